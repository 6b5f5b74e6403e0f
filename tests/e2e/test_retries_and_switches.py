"""A failed load is retried with the documented backoff, five attempts per pod, then the adapter switches pods;
the count lives in the log and in the retry annotations; a failure that says nothing against the adapter is
retried, not blamed on it."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from modeladapter.fsm.events import LoadFailed, PlacementExhausted, PodSwitched
from modeladapter.fsm.phases import PlacementState
from modeladapter.sandbox.engine.faults import Fault
from tests.e2e.conftest import FAST, Sandbox, adapter_manifest


async def test_a_failed_listing_after_an_accepted_load_is_retried_not_blamed_on_the_adapter(sandbox: Sandbox) -> None:
    """The engine accepts the load, then its `/v1/models` answers a generic 500 once. That says nothing
    against the adapter (the engine now holds it): the pod is retried after the backoff, not exhausted for
    the cool-down with a copy the status does not count (soak seed 20261126, sqlite, 40 s)."""
    (pod,) = await sandbox.add_pods(1)
    sandbox.engine(pod).inject(Fault(status=500), route="models", times=1)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    await sandbox.phase("Running", timeout=10)
    assert (await sandbox.status())["instances"] == [pod]
    uid = (await sandbox.state()).stream_id
    assert uid is not None
    recorded = [e.payload for e in await sandbox.store.read(uid)]
    failures = [p for p in recorded if isinstance(p, LoadFailed)]
    assert len(failures) == 1 and failures[0].retriable, failures
    assert "500" in failures[0].error
    assert not [p for p in recorded if isinstance(p, PlacementExhausted)]


async def test_retries_follow_the_documented_backoff_and_are_persisted(sandbox: Sandbox) -> None:
    """5 attempts on a pod, waits of 1, 2, 4, 8 times the base in between, all in the log and the annotations."""
    (pod,) = await sandbox.add_pods(1)
    sandbox.engine(pod).inject(Fault(status=503), route="load", times=3)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    await sandbox.phase("Running", timeout=10)
    state = await sandbox.state()
    uid = state.stream_id
    assert uid is not None
    failures = [e for e in await sandbox.store.read(uid) if isinstance(e.payload, LoadFailed)]
    assert [f.payload.attempt for f in failures] == [1, 2, 3]
    base = FAST.backoff.base
    assert [f.payload.retry_at - f.recorded_at for f in failures] == [base, base * 2, base * 4]
    assert all(f.payload.retriable for f in failures)


async def test_a_slow_failure_is_recorded_when_it_happened_and_its_backoff_counts_from_then(sandbox: Sandbox) -> None:
    """An engine that takes 0.6 s to fail: the failure's time is the answer's, and the wait starts after it."""
    (pod,) = await sandbox.add_pods(1)
    sandbox.engine(pod).inject(Fault(delay=0.6, status=503), route="load", times=1)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    await sandbox.phase("Running", timeout=10)
    uid = (await sandbox.state()).stream_id
    assert uid is not None
    recorded = await sandbox.store.read(uid)
    started = next(e for e in recorded if e.payload.type == "LoadStarted")
    failed = next(e for e in recorded if isinstance(e.payload, LoadFailed))
    assert failed.recorded_at - started.recorded_at >= timedelta(seconds=0.6)
    assert failed.payload.retry_at == failed.recorded_at + FAST.backoff.base


async def test_retry_annotations_mirror_a_retrying_placement(sandbox: Sandbox) -> None:

    from modeladapter.fsm.backoff import BackoffPolicy

    (pod,) = await sandbox.add_pods(1)
    sandbox.engine(pod).inject(Fault(status=503), route="load", times=None)
    await sandbox.start_operator(replace(FAST, backoff=BackoffPolicy.scaled(0.5)))
    await sandbox.apply(adapter_manifest(replicas=1))

    async def annotated() -> dict[str, str] | None:
        annotations = (await sandbox.adapter())["metadata"].get("annotations") or {}
        count = annotations.get(f"adapter.model.aibrix.ai/retry-count.{pod}")
        return annotations if count and int(count) >= 2 else None

    annotations = await sandbox.eventually(annotated, what="retry annotations")
    assert datetime.fromisoformat(annotations[f"adapter.model.aibrix.ai/last-retry-time.{pod}"].replace("Z", "+00:00"))
    sandbox.engine(pod).clear_faults()
    await sandbox.phase("Running", timeout=15)
    await sandbox.eventually(
        lambda: _no_retry_annotations(sandbox), what="the retry annotations to go once the pod loaded"
    )


async def test_a_non_retriable_error_switches_pods_at_once_and_the_switch_is_an_event(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(2)
    await sandbox.start_operator()
    # The first pod's engine refuses the key: authentication is not worth a retry on that pod.
    sandbox.engine(pods[0]).inject(Fault(status=401), route="load", times=None)
    sandbox.engine(pods[1]).inject(Fault(status=401), route="load", times=None)
    await sandbox.apply(adapter_manifest(replicas=1))
    failed = await sandbox.phase("Failed")
    ready = {c["type"]: c for c in failed["conditions"]}["Ready"]
    assert ready["reason"] == "ModelAdapterLoadingError"
    assert ready["message"].startswith("Loading failed on all pods: pod ")
    state = await sandbox.state()
    assert {p.pod: p.attempts for p in state.placements} == {pods[0]: 1, pods[1]: 1}, "no retry on the same pod"
    uid = state.stream_id
    assert uid is not None
    assert any(isinstance(e.payload, PodSwitched) for e in await sandbox.store.read(uid))


async def test_after_five_failed_attempts_the_adapter_switches_pods_with_a_warning(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(2)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    status = await sandbox.phase("Running")
    first = status["instances"][0]
    other = next(p for p in pods if p != first)
    # Someone else unloads the adapter from the serving pod's engine, which refuses every load from now on.
    sandbox.engine(first).inject(Fault(status=503), route="load", times=None)
    sandbox.engine(first).unload_by_another_client("qwen-code-lora")
    moved = await sandbox.eventually(
        lambda: sandbox.status_where(name="qwen-code-lora", check=lambda s: s.get("instances") == [other]),
        timeout=15,
        what="the switch",
    )
    assert moved["phase"] == "Running"
    warnings = [e for e in await sandbox.events() if e["reason"] == "MaxRetriesExceeded"]
    assert warnings and warnings[0]["type"] == "Warning" and first in warnings[0]["message"]
    state = await sandbox.state()
    exhausted = state.placement(first)
    assert exhausted is not None and exhausted.state is PlacementState.EXHAUSTED and exhausted.attempts == 5


async def _no_retry_annotations(sandbox: Sandbox) -> bool:
    annotations = (await sandbox.adapter())["metadata"].get("annotations") or {}
    return not any(key.startswith("adapter.model.aibrix.ai/retry-count") for key in annotations)
