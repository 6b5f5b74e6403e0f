"""`Reconciler.reconcile(uid)`: one pass over one ModelAdapter, level-triggered, controller-runtime style.

A reconcile is told only which adapter to look at. It reads the object and its pods from the informers'
caches and its history from the event log (folded, cached per uid and topped up with new events), then:

* **the spec**: a new generation is recorded (`SpecObserved`, and `SpecRejected` naming the field if it is
  invalid); a new stream starts `Pending` (`plan_admission`);
* **deleted or vanished**: unload everywhere, then end the stream (`modeladapter.operator.reconcile.retiring`);
* **invalid spec**: `Failed` with reason `InvalidSpec`, the condition naming the field;
* **otherwise**: the finalizer first, then converging on the spec
  (`modeladapter.operator.reconcile.converging`).

What to do is decided by the planner and the state machines (`modeladapter.fsm`); this package reads the
world, makes the calls and writes the results. A pass returns a `Result` (when to look again, and what it
appended, for the controller's metrics). An append that another writer beat is `ConcurrencyConflict`,
handled here and only here: the cached state is dropped and the adapter is looked at again at once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from modeladapter.fsm.observations import Observation
from modeladapter.fsm.planning import plan_admission
from modeladapter.operator.api.spec import SpecProblem
from modeladapter.operator.api.view import AdapterObject, AdapterRef, read_adapter
from modeladapter.operator.kube.client import KubeApi
from modeladapter.operator.kube.events import EventRecorder
from modeladapter.operator.reconcile.context import Context
from modeladapter.operator.reconcile.converging import converge, fail
from modeladapter.operator.reconcile.echoes import StatusEchoes
from modeladapter.operator.reconcile.finalizers import ensure_finalizer
from modeladapter.operator.reconcile.index import PlacementIndex
from modeladapter.operator.reconcile.journal import Journal
from modeladapter.operator.reconcile.passes import Pass
from modeladapter.operator.reconcile.ports import ClusterReader, EngineClients
from modeladapter.operator.reconcile.publishing import Counts, Publisher
from modeladapter.operator.reconcile.results import Result
from modeladapter.operator.reconcile.retiring import ONE_SECOND, retire_orphan, terminate
from modeladapter.operator.reconcile.settings import ReconcileSettings
from modeladapter.store import ConcurrencyConflict, SqlEventStore

log = logging.getLogger(__name__)

DEFAULT_SETTINGS = ReconcileSettings()


class Reconciler:
    def __init__(
        self,
        *,
        kube: KubeApi,
        store: SqlEventStore,
        engines: EngineClients,
        cluster: ClusterReader,
        recorder: EventRecorder,
        settings: ReconcileSettings = DEFAULT_SETTINGS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        index: PlacementIndex | None = None,
        echoes: StatusEchoes | None = None,
    ) -> None:
        self.index = index if index is not None else PlacementIndex()
        """Which adapters sit on which pod; the controller's router reads it too."""
        self.echoes = echoes if echoes is not None else StatusEchoes()
        """The statuses this operator wrote; the controller's router reads it too."""
        self.journal = Journal(store, recorder)
        self.ctx = Context(
            kube=kube,
            cluster=cluster,
            engines=engines,
            journal=self.journal,
            publisher=Publisher(kube, recorder, self.echoes, route_parent=settings.http_route_parent),
            recorder=recorder,
            index=self.index,
            echoes=self.echoes,
            settings=settings,
            clock=clock,
        )

    async def reconcile(self, uid: str, *, reconcile_id: str | None = None) -> Result:
        """Bring one adapter closer to its spec."""
        ctx = self.ctx
        raw = ctx.cluster.adapter(uid)
        adapter = read_adapter(raw) if raw is not None else None
        base = await self.journal.load(uid)
        ref = adapter.ref if adapter is not None else AdapterRef(uid, base.namespace or "", base.name or "")
        step = Pass(
            ref=ref,
            base=base,
            now=ctx.clock(),
            reconcile_id=reconcile_id or uuid.uuid4().hex[:16],
            generation=adapter.generation if adapter is not None else 1,
            shown=adapter.status if adapter is not None else {},
        )
        conflict = False
        try:
            requeue = await self._reconcile(step, adapter)
        except ConcurrencyConflict as error:
            log.warning("%s; the next reconcile reads the log again", error)
            self.journal.drop(uid)
            requeue, conflict = timedelta(0), True
        return Result(
            requeue_after=requeue,
            phase=step.state.phase,
            finalized=step.state.finalized,
            appended=tuple(step.appended),
            append_seconds=tuple(step.append_seconds),
            load_calls=tuple(step.load_calls),
            conflict=conflict,
            namespace=ref.namespace,
            name=ref.name,
            instances=tuple(step.state.instances),
        )

    async def _reconcile(self, step: Pass, adapter: AdapterObject | None) -> timedelta | None:
        ctx = self.ctx
        if adapter is None:
            requeue = None
            if step.base.version and not step.base.finalized:
                requeue = await retire_orphan(ctx, step)
            if step.state.finalized or not step.base.version:
                ctx.index.forget(step.uid)
                ctx.echoes.forget(step.uid)
                ctx.publisher.forget(step.uid)
            return requeue
        admission = plan_admission(step.state, spec=adapter.observed, rejection=adapter.rejection, now=step.now)
        step.take(admission)
        fresh_spec = bool(admission.steps)
        if adapter.deleting:
            return await terminate(ctx, step, adapter)
        if isinstance(adapter.spec, SpecProblem):
            await fail(ctx, step, adapter, reason="InvalidSpec", problem=adapter.spec)
            return ctx.next_look(step, Observation(now=step.now, namespace="", name=""), service_ready=True)
        if not await ensure_finalizer(ctx.kube, adapter):
            await ctx.finish(step, adapter, Counts(candidates=0, desired=0))
            return ONE_SECOND
        return await converge(ctx, step, adapter, adapter.spec, fresh_spec=fresh_spec)
