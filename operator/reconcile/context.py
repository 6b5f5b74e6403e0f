"""What every step of a reconcile works with: the cluster, the log, the engines, the clock and the settings,
gathered once so that a step takes the pass and the context instead of a row of loose parameters."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from modeladapter.fsm.calls import next_look
from modeladapter.fsm.observations import Observation
from modeladapter.fsm.state import AdapterState
from modeladapter.operator.api.spec import LabelSelector
from modeladapter.operator.api.view import AdapterObject, AdapterRef
from modeladapter.operator.kube.client import KubeApi
from modeladapter.operator.kube.events import EventRecorder
from modeladapter.operator.reconcile.echoes import StatusEchoes
from modeladapter.operator.reconcile.engine_calls import EngineCalls
from modeladapter.operator.reconcile.index import PlacementIndex
from modeladapter.operator.reconcile.journal import Journal
from modeladapter.operator.reconcile.observing import Sight, look
from modeladapter.operator.reconcile.passes import Pass
from modeladapter.operator.reconcile.ports import ClusterReader, EngineClients
from modeladapter.operator.reconcile.publishing import Counts, Publisher
from modeladapter.operator.reconcile.secrets import Credentials
from modeladapter.operator.reconcile.settings import ReconcileSettings


@dataclass(slots=True)
class Context:
    kube: KubeApi
    cluster: ClusterReader
    engines: EngineClients
    journal: Journal
    publisher: Publisher
    recorder: EventRecorder
    index: PlacementIndex
    echoes: StatusEchoes
    settings: ReconcileSettings
    clock: Callable[[], datetime]
    verified: dict[str, dict[str, datetime]] = field(default_factory=dict)
    """uid -> pod -> when the engine last confirmed the adapter (this process's memory; empty after a start)."""

    def look(self, ref: AdapterRef, selector: LabelSelector | None = None) -> Sight:
        return look(self.cluster, ref, selector)

    def calls(self, labels: Mapping[str, str], credentials: Credentials) -> EngineCalls:
        return EngineCalls(
            self.engines, adapter_labels=labels, credentials=credentials, runtime_sidecar=self.settings.runtime_sidecar
        )

    def tick(self, step: Pass) -> None:
        step.tick(self.clock())

    def confirmed(self, uid: str, pods: Iterable[str], at: datetime) -> None:
        """The engines of `pods` listed the adapter at `at`."""
        self.verified.setdefault(uid, {}).update(dict.fromkeys(pods, at))

    def keep_verified_only_for_loaded(self, uid: str, state: AdapterState) -> None:
        """Confirmations of placements that are no longer loaded say nothing any more."""
        known = self.verified.get(uid)
        if known is None:
            return
        loaded = set(state.instances)
        for pod in [p for p in known if p not in loaded]:
            del known[pod]

    async def finish(self, step: Pass, adapter: AdapterObject, counts: Counts) -> None:
        """The end of a pass: one append of what is left, then the status."""
        await self.journal.append(step)
        await self.publisher.status(step, adapter, counts)

    def next_look(self, step: Pass, observation: Observation, *, service_ready: bool) -> timedelta | None:
        return next_look(step.state, observation, self.settings, service_ready=service_ready)

    def forget(self, uid: str) -> None:
        """An adapter is gone for good: drop what this process kept about it."""
        self.index.forget(uid)
        self.echoes.forget(uid)
        self.recorder.forget(uid)
        self.journal.drop(uid)
        self.verified.pop(uid, None)
