"""Each reconcile is counted the controller-runtime way, and what a pass did reaches the project's metrics: its
load calls by outcome and the adapter's current phase. A real `Controller` runs reconcilers that return
prescribed `Result`s (or raise), as the reconcile core would.

Excluded: the queue's own bookkeeping (test_work_queue.py) and the exposition as a whole (test_metrics_lint.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modeladapter.fsm.phases import Phase
from modeladapter.fsm.plans import CallOutcome
from modeladapter.operator.controller.controller import Controller
from modeladapter.operator.controller.metrics import OperatorMetrics
from modeladapter.operator.kube.client import Kube
from modeladapter.operator.reconcile.echoes import StatusEchoes
from modeladapter.operator.reconcile.index import PlacementIndex
from modeladapter.operator.reconcile.reconciler import Reconciler
from modeladapter.operator.reconcile.results import Result
from modeladapter.store import SqlEventStore


class Prescribed:
    """A reconciler that returns (or raises) what the test prescribes, one answer per reconcile."""

    index = PlacementIndex()
    echoes = StatusEchoes()

    def __init__(self, *answers: Result | Exception) -> None:
        self.answers = list(answers)
        self.journal = SimpleNamespace(on_appended=None)

    async def reconcile(self, uid: str, *, reconcile_id: str | None = None) -> Any:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def controller_with(reconciler: Prescribed, metrics: OperatorMetrics, *, concurrency: int = 8) -> Controller:
    return Controller(
        kube=cast(Kube, None),
        store=cast(SqlEventStore, SimpleNamespace()),
        make_reconciler=lambda cache: cast(Reconciler, reconciler),
        metrics=metrics,
        concurrency=concurrency,
    )


def exported(metrics: OperatorMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for sample in family.samples
    }


def reconcile_results(metrics: OperatorMetrics) -> dict[str, float]:
    return {
        dict(labels)["result"]: value
        for (name, labels), value in exported(metrics).items()
        if name == "controller_runtime_reconcile_total"
    }


def running(requeue_after: timedelta | None, **fields: Any) -> Result:
    return Result(requeue_after=requeue_after, phase=Phase.RUNNING, namespace="default", name="lora-a", **fields)


@pytest.mark.parametrize(
    ("answer", "result"),
    [
        pytest.param(running(None), "success", id="nothing due: success"),
        pytest.param(running(timedelta(seconds=30)), "requeue_after", id="a deadline: requeue_after"),
        pytest.param(running(timedelta(0), conflict=True), "requeue", id="look again at once: requeue"),
        pytest.param(TimeoutError("the database did not answer"), "error", id="raised: error"),
    ],
)
async def test_a_reconcile_is_counted_under_controller_runtimes_result(answer: Result | Exception, result: str) -> None:
    metrics = OperatorMetrics(process_metrics=False)
    await controller_with(Prescribed(answer), metrics)._reconcile("uid-a")
    assert reconcile_results(metrics) == {
        r: float(r == result) for r in ("success", "error", "requeue", "requeue_after")
    }
    values = exported(metrics)
    assert values[("controller_runtime_reconcile_time_seconds_count", (("controller", "modeladapter"),))] == 1
    assert values[("controller_runtime_reconcile_errors_total", (("controller", "modeladapter"),))] == float(
        result == "error"
    )


QUEUE = (("controller", "modeladapter"), ("name", "modeladapter"))


async def test_every_reconcile_that_asks_to_come_back_is_a_retry_as_client_go_counts_it() -> None:
    metrics = OperatorMetrics(process_metrics=False)
    answers = (RuntimeError("boom"), running(timedelta(0)), running(timedelta(seconds=1)), running(None))
    controller = controller_with(Prescribed(*answers), metrics)
    controller.act()
    for _ in answers:
        await controller._reconcile("uid-a")
    # error: AddRateLimited; requeue: AddRateLimited; requeue_after: AddAfter; success: nothing.
    assert exported(metrics)[("workqueue_retries_total", QUEUE)] == 3


def queue_gauges(metrics: OperatorMetrics) -> dict[str, float]:
    return {
        name: value
        for (name, labels), value in exported(metrics).items()
        if labels == QUEUE
        and name
        in ("workqueue_depth", "workqueue_unfinished_work_seconds", "workqueue_longest_running_processor_seconds")
    }


async def test_a_standby_exports_an_idle_queue_and_its_keys_count_as_added_when_it_leads() -> None:
    metrics = OperatorMetrics(process_metrics=False)
    controller = controller_with(Prescribed(), metrics)
    for uid in ("uid-a", "uid-b", "uid-c"):
        controller.queue.add(uid)  # what a standby's informers enqueue
    idle = {
        "workqueue_depth": 0,
        "workqueue_unfinished_work_seconds": 0,
        "workqueue_longest_running_processor_seconds": 0,
    }
    assert queue_gauges(metrics) == idle
    assert exported(metrics)[("workqueue_adds_total", QUEUE)] == 0

    controller.act()
    assert queue_gauges(metrics)["workqueue_depth"] == 3
    assert exported(metrics)[("workqueue_adds_total", QUEUE)] == 3

    controller.stand_by()
    assert queue_gauges(metrics) == idle


async def test_a_replica_that_stops_leading_drops_its_per_adapter_series_and_a_late_reconcile_adds_none() -> None:
    metrics = OperatorMetrics(process_metrics=False)
    serving = running(None, instances=("pod-0", "pod-1"))
    controller = controller_with(Prescribed(serving, serving), metrics)

    def per_adapter() -> dict[str, int]:
        names = ("modeladapter_adapter_phase", "modeladapter_adapter_verified")
        return {name: sum(1 for (n, _), value in exported(metrics).items() if n == name and value) for name in names}

    def running_count() -> float:
        return exported(metrics)[("modeladapter_adapters", (("phase", "Running"),))]

    controller.act()
    await controller._reconcile("uid-a")
    assert (per_adapter(), running_count()) == (
        {"modeladapter_adapter_phase": 1, "modeladapter_adapter_verified": 2},
        1,
    )
    controller.stand_by()
    assert (per_adapter(), running_count()) == (
        {"modeladapter_adapter_phase": 0, "modeladapter_adapter_verified": 0},
        0,
    )
    await controller._reconcile("uid-a")  # one that was under way when the lease went
    assert (per_adapter(), running_count()) == (
        {"modeladapter_adapter_phase": 0, "modeladapter_adapter_verified": 0},
        0,
    )


async def test_workers_are_counted_while_they_reconcile_and_the_limit_is_the_concurrency() -> None:
    metrics = OperatorMetrics(process_metrics=False)
    controller = controller_with(Prescribed(running(None)), metrics, concurrency=3)
    label = (("controller", "modeladapter"),)
    assert exported(metrics)[("controller_runtime_max_concurrent_reconciles", label)] == 3
    controller.queue.add("uid-a")
    controller.act()
    seen_during: list[float] = []
    reconcile = controller.reconciler.reconcile

    async def watched(uid: str, *, reconcile_id: str | None = None) -> Result:
        seen_during.append(exported(metrics)[("controller_runtime_active_workers", label)])
        return await reconcile(uid, reconcile_id=reconcile_id)

    controller.reconciler.reconcile = watched  # type: ignore[method-assign]
    worker = asyncio.create_task(controller._worker())
    try:
        while not reconcile_results(metrics)["success"]:
            await asyncio.sleep(0.01)
    finally:
        worker.cancel()
    assert seen_during == [1]
    assert exported(metrics)[("controller_runtime_active_workers", label)] == 0


async def test_load_calls_are_observed_by_outcome() -> None:
    metrics = OperatorMetrics(process_metrics=False)
    calls = (
        CallOutcome(duration_ms=120.0),
        CallOutcome(error="EngineUnavailable: 503", retriable=True, duration_ms=40.0),
        CallOutcome(error="EngineUnavailable: 503", retriable=True, duration_ms=30.0),
        CallOutcome(error="AdapterRejected: 401", retriable=False, duration_ms=10.0),
    )
    await controller_with(Prescribed(running(None, load_calls=calls)), metrics)._reconcile("uid-a")
    values = exported(metrics)
    count, total = "modeladapter_load_duration_seconds_count", "modeladapter_load_duration_seconds_sum"
    assert {o: values[(count, (("outcome", o),))] for o in ("succeeded", "failed_retriable", "failed")} == {
        "succeeded": 1,
        "failed_retriable": 2,
        "failed": 1,
    }
    assert values[(total, (("outcome", "failed_retriable"),))] == pytest.approx(0.07)


async def test_the_adapter_phase_series_follows_the_reconciles_and_goes_when_the_adapter_is_finalized() -> None:
    metrics = OperatorMetrics(process_metrics=False)
    loading = Result(requeue_after=None, phase=Phase.LOADING, namespace="default", name="lora-a")
    finalized = Result(requeue_after=None, phase=None, finalized=True, namespace="default", name="lora-a")
    controller = controller_with(Prescribed(loading, running(None), finalized), metrics)
    controller.act()

    def series() -> dict[str, float]:
        return {
            dict(labels)["phase"]: value
            for (name, labels), value in exported(metrics).items()
            if name == "modeladapter_adapter_phase"
        }

    await controller._reconcile("uid-a")
    assert series() == {"Loading": 1}
    await controller._reconcile("uid-a")
    assert series() == {"Running": 1}
    await controller._reconcile("uid-a")
    assert series() == {}
