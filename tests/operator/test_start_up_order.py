"""After a start, every adapter is queued, in a new order each time: a crash loop must not starve the same ones."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from modeladapter.operator.controller.controller import Controller
from modeladapter.operator.kube.client import Kube
from modeladapter.operator.reconcile.echoes import StatusEchoes
from modeladapter.operator.reconcile.index import PlacementIndex
from modeladapter.operator.reconcile.reconciler import Reconciler
from modeladapter.store import SqlEventStore


class NoStreams:
    async def streams(self, *, namespace: str | None = None) -> list[Any]:
        return []


def adapter(uid: str) -> dict[str, Any]:
    return {
        "metadata": {"uid": uid, "name": uid, "namespace": "default", "resourceVersion": "1"},
        "spec": {"podSelector": {"matchLabels": {"model": "qwen"}}, "artifactURL": "hf://org/repo"},
    }


async def start_order(uids: list[str]) -> list[str]:
    """The order in which a freshly started controller's workers would take the adapters."""
    shared = SimpleNamespace(index=PlacementIndex(), echoes=StatusEchoes())  # all the router needs of a reconciler
    controller = Controller(kube=cast(Kube, None), store=cast(SqlEventStore, NoStreams()),
                            make_reconciler=lambda cluster: cast(Reconciler, shared))  # fmt: skip
    for uid in uids:
        controller.cache._adapter_changed(None, adapter(uid))
    await controller._enqueue_everything()
    return [await controller.queue.get() for _ in uids]


async def test_every_adapter_is_queued_once_in_a_new_order_at_each_start() -> None:
    uids = [f"adapter-{index:02d}" for index in range(40)]
    orders = [await start_order(uids) for _ in range(3)]
    assert all(sorted(order) == uids for order in orders)
    assert len({tuple(order) for order in orders}) == 3, "the same order twice in 40! is a broken shuffle"
    assert orders[0] != uids, "not the API's order"
