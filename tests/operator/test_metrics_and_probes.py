"""What Prometheus and the kubelet see: `/metrics` in the text format with the operator's metrics, and `/healthz`
and `/readyz` answering from the core's callables. Every test talks real HTTP to a `ProbeServer` on a free port.

Excluded: deciding health and readiness (the core's callables) and when the core records what."""

from __future__ import annotations

import platform
from collections.abc import AsyncIterator, Callable
from importlib.metadata import version

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modeladapter.fsm.phases import Phase
from modeladapter.operator.controller.metrics import OperatorMetrics
from modeladapter.operator.controller.probes import CheckResult, ProbeServer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition, keyed by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


class Switch:
    """A check whose verdict a test flips."""

    def __init__(self, verdict: bool | CheckResult = True) -> None:
        self.verdict = verdict

    def __call__(self) -> bool | CheckResult:
        return self.verdict


@pytest.fixture
def metrics() -> OperatorMetrics:
    return OperatorMetrics()


@pytest.fixture
async def served(metrics: OperatorMetrics) -> AsyncIterator[tuple[ProbeServer, Switch, Switch, aiohttp.ClientSession]]:
    healthy, ready = Switch(), Switch(False)
    async with ProbeServer("127.0.0.1:0", metrics=metrics, is_healthy=healthy, is_ready=ready) as server:
        async with aiohttp.ClientSession(server.url) as session:
            yield server, healthy, ready, session


async def get(session: aiohttp.ClientSession, path: str, **headers: str) -> tuple[int, str, str]:
    async with session.get(path, headers=headers) as response:
        return response.status, await response.text(), response.headers.get("Content-Type", "")


# --- metrics ------------------------------------------------------------------------------------------------


def test_every_phase_is_exported_from_the_start_and_a_phase_left_out_drops_to_zero(metrics: OperatorMetrics) -> None:
    assert {
        samples(metrics.exposition().decode())[("modeladapter_adapters", (("phase", p.value),))] for p in Phase
    } == {0}
    metrics.set_phase_counts({Phase.RUNNING: 3, Phase.LOADING: 1})
    metrics.set_phase_counts({Phase.RUNNING: 4})
    exported = samples(metrics.exposition().decode())
    assert exported[("modeladapter_adapters", (("phase", "Running"),))] == 4
    assert exported[("modeladapter_adapters", (("phase", "Loading"),))] == 0


def test_phase_counts_must_name_phases(metrics: OperatorMetrics) -> None:
    with pytest.raises(ValueError, match="not ModelAdapter phases"):
        metrics.set_phase_counts({"Sleeping": 1})  # type: ignore[dict-item]


def test_transitions_are_counted_by_the_phase_left_and_the_phase_entered(metrics: OperatorMetrics) -> None:
    metrics.phase_changed(None, Phase.PENDING)
    metrics.phase_changed(Phase.LOADING, Phase.BOUND)
    metrics.phase_changed(Phase.LOADING, Phase.BOUND)
    exported = samples(metrics.exposition().decode())
    key = "modeladapter_phase_transitions_total"
    assert exported[(key, (("from_phase", "None"), ("to_phase", "Pending")))] == 1
    assert exported[(key, (("from_phase", "Loading"), ("to_phase", "Bound")))] == 2


def test_loads_retries_switches_and_errors_are_counted(metrics: OperatorMetrics) -> None:
    metrics.load_retried()
    metrics.load_retried()
    metrics.pod_switched()
    metrics.reconcile_failed("ApiServerUnavailable")
    exported = samples(metrics.exposition().decode())
    assert exported[("modeladapter_load_retries_total", ())] == 2
    assert exported[("modeladapter_pod_switches_total", ())] == 1
    assert exported[("modeladapter_reconcile_errors_total", (("reason", "ApiServerUnavailable"),))] == 1


def verified(metrics: OperatorMetrics) -> set[tuple[str, str, str]]:
    exported = samples(metrics.exposition().decode())
    return {
        (labels["namespace"], labels["adapter"], labels["pod"])
        for (name, pairs), value in exported.items()
        if name == "modeladapter_adapter_verified" and value == 1 and (labels := dict(pairs))
    }


def test_each_instance_is_one_verified_series_that_goes_when_the_instance_does(metrics: OperatorMetrics) -> None:
    metrics.set_verified("uid-a", "default", "lora-a", ("pod-0", "pod-1"))
    metrics.set_verified("uid-b", "team", "lora-b", ("pod-1",))
    assert verified(metrics) == {
        ("default", "lora-a", "pod-0"),
        ("default", "lora-a", "pod-1"),
        ("team", "lora-b", "pod-1"),
    }

    metrics.set_verified("uid-a", "default", "lora-a", ("pod-1", "pod-2"))
    metrics.forget("uid-b")
    exposition = metrics.exposition().decode()
    assert verified(metrics) == {("default", "lora-a", "pod-1"), ("default", "lora-a", "pod-2")}
    assert 'pod="pod-0"' not in exposition and 'adapter="lora-b"' not in exposition, "no stale series left at 0"


@pytest.mark.parametrize(
    ("observe", "name", "labels"),
    [
        pytest.param(
            lambda m, s: m.observe_load(s, "succeeded"),
            "modeladapter_load_duration_seconds",
            (("outcome", "succeeded"),),
            id="load",
        ),
        pytest.param(OperatorMetrics.observe_reconcile, "modeladapter_reconcile_duration_seconds", (), id="reconcile"),
        pytest.param(
            OperatorMetrics.observe_event_append, "modeladapter_event_append_duration_seconds", (), id="append"
        ),
    ],
)
def test_durations_land_in_histogram_buckets(
    metrics: OperatorMetrics,
    observe: Callable[[OperatorMetrics, float], None],
    name: str,
    labels: tuple[tuple[str, str], ...],
) -> None:
    observe(metrics, 0.003)
    observe(metrics, 2.0)
    exported = samples(metrics.exposition().decode())
    assert exported[(f"{name}_count", labels)] == 2
    assert exported[(f"{name}_sum", labels)] == pytest.approx(2.003)
    assert exported[(f"{name}_bucket", tuple(sorted((*labels, ("le", "0.005")))))] == 1
    assert exported[(f"{name}_bucket", tuple(sorted((*labels, ("le", "1.0")))))] == 1
    assert exported[(f"{name}_bucket", tuple(sorted((*labels, ("le", "2.5")))))] == 2


def test_loads_are_told_apart_by_outcome_and_every_outcome_is_exported_from_the_start(
    metrics: OperatorMetrics,
) -> None:
    key = "modeladapter_load_duration_seconds_count"
    assert {
        outcome: samples(metrics.exposition().decode())[(key, (("outcome", outcome),))]
        for outcome in ("succeeded", "failed_retriable", "failed")
    } == {"succeeded": 0, "failed_retriable": 0, "failed": 0}
    metrics.observe_load(0.2, "succeeded")
    metrics.observe_load(5.0, "failed_retriable")
    metrics.observe_load(0.01, "failed_retriable")
    exported = samples(metrics.exposition().decode())
    assert exported[(key, (("outcome", "succeeded"),))] == 1
    assert exported[(key, (("outcome", "failed_retriable"),))] == 2
    assert exported[(key, (("outcome", "failed"),))] == 0


def test_a_load_outcome_outside_the_closed_set_is_refused(metrics: OperatorMetrics) -> None:
    with pytest.raises(ValueError, match="not a load outcome: 'timeout'"):
        metrics.observe_load(1.0, "timeout")


def test_the_load_histogram_spans_a_millisecond_to_five_minutes(metrics: OperatorMetrics) -> None:
    exported = samples(metrics.exposition().decode())
    bounds = {
        float(dict(labels)["le"]) for (name, labels) in exported if name == "modeladapter_load_duration_seconds_bucket"
    }
    assert min(bounds) == 0.001
    assert max(bounds - {float("inf")}) == 300.0


def phases(metrics: OperatorMetrics) -> dict[tuple[str, str], str]:
    """(namespace, adapter) -> the phase its `modeladapter_adapter_phase` series is at 1 on."""
    found: dict[tuple[str, str], str] = {}
    for (name, pairs), value in samples(metrics.exposition().decode()).items():
        if name == "modeladapter_adapter_phase":
            labels = dict(pairs)
            assert value == 1 and (labels["namespace"], labels["adapter"]) not in found, "one series per adapter"
            found[(labels["namespace"], labels["adapter"])] = labels["phase"]
    return found


def test_each_adapter_has_one_phase_series_that_moves_with_its_phase_and_goes_with_it(
    metrics: OperatorMetrics,
) -> None:
    metrics.set_adapter_phase("uid-a", "default", "lora-a", Phase.PENDING)
    metrics.set_adapter_phase("uid-b", "team", "lora-b", Phase.RUNNING)
    assert phases(metrics) == {("default", "lora-a"): "Pending", ("team", "lora-b"): "Running"}

    metrics.set_adapter_phase("uid-a", "default", "lora-a", Phase.FAILED)
    metrics.set_adapter_phase("uid-a", "default", "lora-a", Phase.FAILED)
    assert phases(metrics) == {("default", "lora-a"): "Failed", ("team", "lora-b"): "Running"}

    metrics.forget("uid-b")
    metrics.set_adapter_phase("uid-a", "default", "lora-a", None)
    assert phases(metrics) == {}
    assert "modeladapter_adapter_phase{" not in metrics.exposition().decode(), "no stale series left at 0"


def test_the_build_is_named_by_an_info_gauge(metrics: OperatorMetrics) -> None:
    (labels,) = [
        dict(pairs)
        for (name, pairs), value in samples(metrics.exposition().decode()).items()
        if name == "modeladapter_build_info" and value == 1
    ]
    assert labels == {"version": version("modeladapter"), "python_version": platform.python_version()}


def test_two_operators_in_one_process_count_separately() -> None:
    first, second = OperatorMetrics(), OperatorMetrics()
    first.pod_switched()
    assert samples(first.exposition().decode())[("modeladapter_pod_switches_total", ())] == 1
    assert samples(second.exposition().decode())[("modeladapter_pod_switches_total", ())] == 0


def test_the_process_metrics_come_along(metrics: OperatorMetrics) -> None:
    names = {name for name, _ in samples(metrics.exposition().decode())}
    assert "process_resident_memory_bytes" in names
    assert "python_info" in names


# --- over HTTP ----------------------------------------------------------------------------------------------


async def test_metrics_are_served_in_the_prometheus_text_format(
    served: tuple[ProbeServer, Switch, Switch, aiohttp.ClientSession], metrics: OperatorMetrics
) -> None:
    _, _, _, session = served
    metrics.set_phase_counts({Phase.RUNNING: 2})
    metrics.observe_reconcile(0.02)
    status, body, content_type = await get(session, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=")
    exported = samples(body)
    assert exported[("modeladapter_adapters", (("phase", "Running"),))] == 2
    assert exported[("modeladapter_reconcile_duration_seconds_count", ())] == 1


async def test_a_scraper_that_asks_for_openmetrics_gets_it(
    served: tuple[ProbeServer, Switch, Switch, aiohttp.ClientSession],
) -> None:
    _, _, _, session = served
    status, body, content_type = await get(session, "/metrics", Accept="application/openmetrics-text; version=1.0.0")
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")


async def test_healthz_follows_the_health_check(
    served: tuple[ProbeServer, Switch, Switch, aiohttp.ClientSession],
) -> None:
    _, healthy, _, session = served
    assert await get(session, "/healthz") == (200, "ok\n", "text/plain; charset=utf-8")
    healthy.verdict = CheckResult.failing("the pod watch stopped 2 minutes ago")
    status, body, _ = await get(session, "/healthz")
    assert (status, body) == (503, "the pod watch stopped 2 minutes ago\n")


async def test_readyz_follows_the_readiness_check(
    served: tuple[ProbeServer, Switch, Switch, aiohttp.ClientSession],
) -> None:
    _, _, ready, session = served
    status, body, _ = await get(session, "/readyz")
    assert (status, body) == (503, "readiness check failed\n")
    ready.verdict = True
    assert (await get(session, "/readyz"))[:2] == (200, "ok\n")
    ready.verdict = CheckResult.passing()
    assert (await get(session, "/readyz"))[:2] == (200, "ok\n")


async def test_a_reason_is_kept_to_one_line(served: tuple[ProbeServer, Switch, Switch, aiohttp.ClientSession]) -> None:
    _, _, ready, session = served
    ready.verdict = CheckResult.failing("standby:\n  caches not synced")
    assert (await get(session, "/readyz"))[:2] == (503, "standby: caches not synced\n")


async def test_a_check_that_raises_is_a_503_naming_only_the_exception_type(
    metrics: OperatorMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> bool:
        raise RuntimeError("token abc123 expired")

    async with ProbeServer("127.0.0.1:0", metrics=metrics, is_healthy=broken, is_ready=Switch()) as server:
        async with aiohttp.ClientSession(server.url) as session:
            status, body, _ = await get(session, "/healthz")
            assert (status, body) == (503, "health check failed: RuntimeError\n")
            assert (await get(session, "/metrics"))[0] == 200  # and the server keeps serving
    assert "the health check raised" in caplog.text


async def test_unknown_paths_are_404(served: tuple[ProbeServer, Switch, Switch, aiohttp.ClientSession]) -> None:
    _, _, _, session = served
    assert (await get(session, "/debug"))[0] == 404


async def test_stop_releases_the_port_and_start_can_bind_it_again(metrics: OperatorMetrics) -> None:
    server = ProbeServer("127.0.0.1:0", metrics=metrics, is_healthy=Switch(), is_ready=Switch())
    await server.start()
    port = server.port
    await server.stop()
    again = ProbeServer(f"127.0.0.1:{port}", metrics=metrics, is_healthy=Switch(), is_ready=Switch())
    await again.start()
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
    finally:
        await again.stop()
    with pytest.raises(RuntimeError, match="not started"):
        server.port  # noqa: B018


async def test_a_port_in_use_is_a_clear_error(metrics: OperatorMetrics) -> None:
    async with ProbeServer("127.0.0.1:0", metrics=metrics, is_healthy=Switch(), is_ready=Switch()) as first:
        second = ProbeServer(f"127.0.0.1:{first.port}", metrics=metrics, is_healthy=Switch(), is_ready=Switch())
        with pytest.raises(OSError, match=rf"cannot serve /metrics, /healthz and /readyz on 127.0.0.1:{first.port}: "):
            await second.start()
