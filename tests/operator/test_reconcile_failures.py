"""A reconcile that raises is counted by the error's kind and retried with backoff; a step the state machines
rejected (`RejectedStep`, a bug) is counted like any other failure, never swallowed."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from prometheus_client.parser import text_string_to_metric_families

from modeladapter.operator.controller.controller import Controller
from modeladapter.operator.controller.metrics import OperatorMetrics
from modeladapter.operator.kube.client import Kube
from modeladapter.operator.reconcile.echoes import StatusEchoes
from modeladapter.operator.reconcile.index import PlacementIndex
from modeladapter.operator.reconcile.passes import RejectedStep
from modeladapter.operator.reconcile.reconciler import Reconciler
from modeladapter.store import SqlEventStore


class Failing:
    index = PlacementIndex()
    echoes = StatusEchoes()

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def reconcile(self, uid: str, *, reconcile_id: str | None = None) -> Any:
        raise self.error


def errors(metrics: OperatorMetrics) -> dict[str, float]:
    return {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for sample in family.samples
        if sample.name == "modeladapter_reconcile_errors_total"
    }


def controller_with(reconciler: object, metrics: OperatorMetrics) -> Controller:
    return Controller(
        kube=cast(Kube, None),
        store=cast(SqlEventStore, SimpleNamespace()),
        make_reconciler=lambda cache: cast(Reconciler, reconciler),
        metrics=metrics,
    )


async def test_a_rejected_step_is_counted_by_its_kind_and_the_adapter_is_retried_with_backoff() -> None:
    metrics = OperatorMetrics(process_metrics=False)
    controller = controller_with(Failing(RejectedStep("rule start_loads: trigger 'start_load' ...")), metrics)
    await controller._reconcile("uid-1")
    await controller._reconcile("uid-1")
    assert errors(metrics) == {"RejectedStep": 2.0}
    assert controller.errors == 2 and controller.reconciles == 0
    assert len(controller.queue) == 1, "the adapter waits for its backoff, once"


async def test_other_failures_are_counted_under_their_own_kind() -> None:
    metrics = OperatorMetrics(process_metrics=False)
    await controller_with(Failing(TimeoutError("the database did not answer")), metrics)._reconcile("uid-1")
    assert errors(metrics) == {"TimeoutError": 1.0}
