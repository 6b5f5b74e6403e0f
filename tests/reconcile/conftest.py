"""The fast reconcile tier: the reconciler driven against an in-process cluster, scripted engines, an
in-memory event log and a clock the test moves. No sockets, no sleeps: a pass runs when the test says so.

`world` gives each test an emulated cluster with the ModelAdapter CRD (`InProcessCluster`: the emulator's own
store, without HTTP), pods labelled like the seed documentation's base model, and a `Reconciler` wired to it.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modeladapter import migrations
from modeladapter.fsm.backoff import BackoffPolicy
from modeladapter.fsm.events import AdapterEvent
from modeladapter.fsm.state import AdapterState, fold
from modeladapter.operator.kube.client import EVENTS, MODELADAPTERS, SECRETS, Raw
from modeladapter.operator.kube.events import EventRecorder
from modeladapter.operator.kube.manifests import modeladapter_crd
from modeladapter.operator.reconcile.reconciler import Reconciler
from modeladapter.operator.reconcile.results import Result
from modeladapter.operator.reconcile.settings import ReconcileSettings
from modeladapter.sandbox.apiserver.inprocess import InProcessCluster
from modeladapter.sandbox.apiserver.meta import rfc3339
from modeladapter.sandbox.apiserver.store import DeleteOptions
from modeladapter.sandbox.pods import engine_container, running_status
from modeladapter.store import SqlEventStore, create_engine
from tests.e2e.conftest import POD_LABELS
from tests.reconcile.engines import ScriptedEngine, ScriptedEngines

START = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
SETTINGS = ReconcileSettings(
    stability_window=timedelta(seconds=5),
    backoff=BackoffPolicy(),
    verify_interval=timedelta(seconds=30),
    unload_timeout=timedelta(seconds=60),
    secret_retry=timedelta(seconds=15),
)


class Clock:
    """The time every part of the world reads: it moves only when the test moves it."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | float) -> None:
        self.now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)


@dataclass
class World:
    cluster: InProcessCluster
    engines: ScriptedEngines
    store: SqlEventStore
    clock: Clock
    reconciler: Reconciler
    recorder: EventRecorder
    ips: dict[str, str] = field(default_factory=dict)

    # --- pods ----------------------------------------------------------------------------------------------------

    def add_pod(
        self,
        name: str,
        *,
        labels: dict[str, str] | None = None,
        ready: bool = True,
        ready_for: float = 60.0,
        annotations: dict[str, str] | None = None,
        args: list[str] | None = None,
    ) -> ScriptedEngine:
        """A running pod with the next IP, Ready (or not) for `ready_for` seconds; returns its engine."""
        ip = f"10.0.0.{len(self.ips) + 2}"
        self.ips[name] = ip
        container = {**engine_container(), **({"args": args} if args else {})}
        self.cluster.seed(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": "default",
                    "labels": labels or dict(POD_LABELS),
                    "annotations": annotations or {},
                },
                "spec": {"nodeName": "node-1", "containers": [container]},
            }
        )
        since = self.clock() - timedelta(seconds=ready_for)
        status = running_status(ip, ready=ready, since=since, containers=[container], started=since)
        self.cluster.store.patch(
            self._pods, "default", name, "application/merge-patch+json", {"status": status}, subresource="status"
        )
        return self.engines.at(ip)

    def engine(self, pod: str) -> ScriptedEngine:
        return self.engines.at(self.ips[pod])

    def set_ready(self, pod: str, ready: bool) -> None:
        flag = "True" if ready else "False"
        conditions = [
            {"type": kind, "status": flag, "lastTransitionTime": rfc3339(self.clock())}
            for kind in ("Ready", "ContainersReady")
        ]
        self.cluster.store.patch(
            self._pods,
            "default",
            pod,
            "application/strategic-merge-patch+json",
            {"status": {"conditions": conditions}},
            subresource="status",
        )

    def relabel(self, pod: str, labels: dict[str, str]) -> None:
        self.cluster.store.patch(
            self._pods, "default", pod, "application/merge-patch+json", {"metadata": {"labels": labels}}
        )

    def delete_pod(self, pod: str) -> None:
        self.cluster.store.delete(self._pods, "default", pod, _now_options())

    @property
    def _pods(self) -> Any:
        return self.cluster.store.resource_type("", "v1", "pods")

    # --- adapters ------------------------------------------------------------------------------------------------

    def apply(self, body: Raw) -> str:
        """Create the ModelAdapter, or change its spec; returns its uid."""
        name = body["metadata"]["name"]
        existing = self.cluster.get(MODELADAPTERS, "default", name)
        if existing is None:
            return str(self.cluster.seed(body)["metadata"]["uid"])
        resource = self.cluster.store.resource_type("model.aibrix.ai", "v1alpha1", "modeladapters")
        self.cluster.store.patch(
            resource,
            "default",
            name,
            "application/merge-patch+json",
            {"spec": body["spec"], "metadata": {"labels": body["metadata"].get("labels")}},
        )
        return str(existing["metadata"]["uid"])

    def delete(self, name: str) -> None:
        resource = self.cluster.store.resource_type("model.aibrix.ai", "v1alpha1", "modeladapters")
        self.cluster.store.delete(resource, "default", name, _now_options())

    def add_secret(self, name: str, data: dict[str, str]) -> None:
        """Create the Secret, or replace the data of the one of that name."""
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": "default"},
            "data": encoded,
        }
        if self.cluster.get(SECRETS, "default", name) is None:
            self.cluster.seed(secret)
        else:
            self.cluster.store.update(self.cluster.store.type_for(secret), "default", name, secret)

    def adapter(self, name: str = "qwen-code-lora") -> Raw:
        found = self.cluster.get(MODELADAPTERS, "default", name)
        assert found is not None, f"no ModelAdapter {name}"
        return found

    def uid(self, name: str = "qwen-code-lora") -> str:
        return str(self.adapter(name)["metadata"]["uid"])

    def status(self, name: str = "qwen-code-lora") -> dict[str, Any]:
        return dict(self.adapter(name).get("status") or {})

    def condition(self, kind: str, name: str = "qwen-code-lora") -> dict[str, Any]:
        return next(c for c in self.status(name).get("conditions") or [] if c["type"] == kind)

    async def reconcile(self, name: str = "qwen-code-lora", *, uid: str | None = None) -> Result:
        return await self.reconciler.reconcile(uid or self.uid(name))

    async def settle(self, name: str = "qwen-code-lora", *, passes: int = 10) -> Result:
        """Reconcile until a pass appends nothing (the clock stays where it is)."""
        for _ in range(passes):
            result = await self.reconcile(name)
            if not result.appended:
                return result
        raise AssertionError(f"{name} still changing after {passes} passes")

    async def state(self, name: str = "qwen-code-lora", *, uid: str | None = None) -> AdapterState:
        return fold(await self.store.read(uid or self.uid(name)))

    async def events(self, name: str = "qwen-code-lora", *, uid: str | None = None) -> list[AdapterEvent]:
        return [e.payload for e in await self.store.read(uid or self.uid(name))]

    def k8s_events(self) -> list[Raw]:
        return self.cluster.objects(EVENTS, "default")


def _now_options() -> DeleteOptions:
    return DeleteOptions(grace_period_seconds=0)


async def make_world(settings: ReconcileSettings = SETTINGS) -> tuple[World, SqlEventStore]:
    clock = Clock()
    cluster = InProcessCluster(clock=clock)
    cluster.seed(modeladapter_crd())
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    await migrations.upgrade(engine)
    store = SqlEventStore(engine)
    engines = ScriptedEngines()
    recorder = EventRecorder(cluster.kube)
    reconciler = Reconciler(
        kube=cluster.kube,
        store=store,
        engines=engines,
        cluster=cluster,
        recorder=recorder,
        settings=settings,
        clock=clock,
    )
    return World(cluster, engines, store, clock, reconciler, recorder), store


@pytest.fixture
async def world() -> AsyncIterator[World]:
    built, store = await make_world()
    try:
        yield built
    finally:
        await store.close()
