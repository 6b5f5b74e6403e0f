"""The controller: informers feed a work queue, workers reconcile one adapter at a time each, forever.

`Controller.run()` keeps the cluster cache current (always, so a standby is warm), and, while it may act
(`act()` when it leads or leader election is off, `stand_by()` when it stops leading), runs `concurrency`
workers that take adapter uids from the queue. A reconcile's `Result` sets the key's next visit (the earliest backoff, reconsideration, verification
or stability deadline); an error is logged, counted by its kind (`modeladapter_reconcile_errors_total`; a step
the state machines rejected is `RejectedStep`, a bug) and retried with a per-key backoff (0.5 s doubling to
30 s); a slow safety resync revisits every adapter every `resync` seconds anyway. When the informers first
sync, every adapter is enqueued, and so is every stream of the log that is not finalized, so that adapters
deleted while the operator was away are cleaned up too.

Every reconcile is also counted the controller-runtime way (`controller_runtime_reconcile_total{result}`:
`error`; `requeue` for a `requeue_after` of 0, `requeue_after` above it, `success` for none; the first three
are added back with `add_after`, a retry), and the queue reports its adds, waits and work (`workqueue_*`,
`modeladapter.operator.controller.controller_metrics`). A standby's queue fills but reports nothing: the
queue metrics and the per-adapter gauges are the leader's alone, from `act()` to `stand_by()`.

Each reconcile runs in a log context naming the adapter and a fresh reconcile id, which its events carry too;
every event the journal writes is also one line of the log (`modeladapter.operator.controller.story`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Final, cast

from modeladapter.fsm.events import LoadFailed, PhaseChanged, PodSwitched
from modeladapter.fsm.phases import Phase
from modeladapter.fsm.plans import CallOutcome
from modeladapter.operator.api.status import StatusDocument
from modeladapter.operator.controller.cache import ClusterCache
from modeladapter.operator.controller.logs import log_context
from modeladapter.operator.controller.metrics import OperatorMetrics
from modeladapter.operator.controller.queueing import RestPolicy, ShutDown, WorkQueue
from modeladapter.operator.controller.routing import EventRouter
from modeladapter.operator.controller.story import tell
from modeladapter.operator.kube.client import KubeApi
from modeladapter.operator.reconcile.ports import ClusterReader
from modeladapter.operator.reconcile.reconciler import Reconciler
from modeladapter.operator.reconcile.results import Result
from modeladapter.store import SqlEventStore

log = logging.getLogger(__name__)

ERROR_BACKOFF_START: Final = 0.5
ERROR_BACKOFF_CAP: Final = 30.0
SAFETY_RESYNC_SECONDS: Final = 300.0
QUICK_RUN_REST: Final = RestPolicy()
"""Rests between runs of one adapter that follow each other closely: the first 8 in a row start at once (a new
adapter's few passes to Running), then 5 ms doubling to 1 s. A reconcile that keeps asking to run again at once
(or whose own writes keep waking it) cannot loop without rest; each add held back is counted in
`modeladapter_reconcile_rests_total`."""


class Controller:
    def __init__(
        self,
        *,
        kube: KubeApi,
        store: SqlEventStore,
        make_reconciler: Callable[[ClusterReader], Reconciler],
        namespace: str | None = None,
        concurrency: int = 8,
        resync: float = SAFETY_RESYNC_SECONDS,
        metrics: OperatorMetrics | None = None,
        http_routes: bool = False,
    ) -> None:
        self.store = store
        self.namespace = namespace
        # Observed from act() on; an adapter that keeps coming back at once rests (QUICK_RUN_REST).
        self.queue: WorkQueue[str] = WorkQueue(rest=QUICK_RUN_REST)
        if metrics is not None:
            metrics.controller.set_max_concurrent_reconciles(concurrency)
        self.cache = ClusterCache(kube, namespace=namespace, http_routes=http_routes)
        self.reconciler = make_reconciler(self.cache)
        self.router = EventRouter(
            self.cache, self.queue.add, index=self.reconciler.index, echoes=self.reconciler.echoes
        )
        self.cache.listen(self.router)
        self.metrics = metrics
        self.concurrency = concurrency
        self.resync = resync
        self.may_act = asyncio.Event()
        """Workers run only while this is set (the leader, or leader election is off): see `act`."""
        self.reconciles = 0
        self.errors = 0
        self.phases: dict[str, Phase] = {}
        """The phase of every adapter this operator has reconciled, for the phase gauge."""
        self._failures: dict[str, int] = {}
        self._last_activity = time.monotonic()
        self._shuffle = random.Random().shuffle

    @property
    def ready(self) -> bool:
        return self.cache.synced

    def act(self) -> None:
        """This replica leads (or needs no leader): the workers run, and the metrics tell of the queue from now
        on, its waiting keys counted as added now rather than when a standby's informers saw them."""
        if self.may_act.is_set():
            return
        if self.metrics is not None:
            self.queue.observe(self.metrics.controller)
            self.metrics.controller.watch_queue(self.queue)
        self.may_act.set()

    def stand_by(self) -> None:
        """This replica does not lead (any more): no new reconcile starts, the queue gauges read 0, and the
        per-adapter series go, so that only the leader's are scraped. Called at the start of each campaign."""
        self.may_act.clear()
        self.phases.clear()
        if self.metrics is not None:
            self.queue.observe(None)
            self.metrics.controller.watch_queue(None)
            self.metrics.forget_adapters()

    async def run(self) -> None:
        self.reconciler.journal.on_appended = tell  # every event recorded is one line of the adapter's story
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.cache.run(), name="informers")
            await self.cache.wait_synced()
            for uid in self.cache.adapter_uids():
                adapter = self.cache.adapter(uid) or {}
                namespace = str((adapter.get("metadata") or {}).get("namespace", ""))
                self.reconciler.index.seed(uid, namespace, cast(StatusDocument, adapter.get("status") or {}))
            await self._enqueue_everything()
            tasks.create_task(self._resync_loop(), name="resync")
            for number in range(self.concurrency):
                tasks.create_task(self._worker(), name=f"worker-{number}")

    async def _enqueue_everything(self) -> None:
        for uid in self.cache.adapter_uids():
            self.queue.add(uid)
        delay = ERROR_BACKOFF_START
        while True:
            try:
                streams = await self.store.streams(namespace=self.namespace)
                break
            except Exception as error:  # the event log may blink; this is worth waiting for, not dying of
                log.warning("could not list the event log's streams (%s); again in %.1fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, ERROR_BACKOFF_CAP)
        live = set(self.cache.adapter_uids())
        for stream in streams:
            if stream.finalized_at is None and stream.stream_id not in live:
                self.queue.add(stream.stream_id)  # deleted while we were away: clean up
        # In a new order at each start: after a restart every adapter is verified, and if the operator is
        # restarted again before it got through them all (a crash loop, a node that keeps dying), a fixed
        # order (the informers', by namespace and name) would leave the same adapters unverified every time.
        self.queue.reorder_ready(self._shuffle)

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.resync)
            for uid in self.cache.adapter_uids():
                self.queue.add(uid)

    async def _worker(self) -> None:
        while True:
            await self.may_act.wait()
            try:
                uid = await self.queue.get()
            except ShutDown:
                return
            try:
                if not self.may_act.is_set():
                    self.queue.add(uid)  # not ours to act on any more; whoever leads next will
                    continue
                if self.metrics is not None:
                    self.metrics.controller.worker_started()
                try:
                    await self._reconcile(uid)
                finally:
                    if self.metrics is not None:
                        self.metrics.controller.worker_finished()
            finally:
                self.queue.done(uid)
                self._last_activity = time.monotonic()

    async def _reconcile(self, uid: str) -> None:
        reconcile_id = uuid.uuid4().hex[:16]
        metadata = (self.cache.adapter(uid) or {}).get("metadata") or {}
        started = time.perf_counter()
        try:
            with log_context(
                adapter=metadata.get("name"), namespace=metadata.get("namespace"), uid=uid, reconcile_id=reconcile_id
            ):
                result = await self.reconciler.reconcile(uid, reconcile_id=reconcile_id)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.errors += 1
            if self.metrics is not None:
                self.metrics.reconcile_failed(type(error).__name__)
                self.metrics.controller.reconciled("error", time.perf_counter() - started)
            failures = self._failures[uid] = self._failures.get(uid, 0) + 1
            delay = min(ERROR_BACKOFF_START * 2 ** (failures - 1), ERROR_BACKOFF_CAP)
            log.exception("reconcile of %s failed (%d in a row); again in %.1fs", uid, failures, delay)
            self.queue.add_after(uid, delay)
            return
        self.reconciles += 1
        self._failures.pop(uid, None)
        seconds = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.controller.reconciled(result_label(result.requeue_after), seconds)
        self._count(uid, result, seconds)
        if result.requeue_after is not None:  # requeue or requeue_after: client-go's AddAfter, a retry
            self.queue.add_after(uid, result.requeue_after.total_seconds())

    def _count(self, uid: str, result: Result, seconds: float) -> None:
        # A reconcile that ends after stand_by() keeps out of the gauges: they are the leader's.
        acting = self.may_act.is_set()
        if acting and result.finalized:
            self.phases.pop(uid, None)
        elif acting and result.phase is not None:
            self.phases[uid] = result.phase
        metrics = self.metrics
        if metrics is None:
            return
        metrics.observe_reconcile(seconds)
        for appended in result.append_seconds:
            metrics.observe_event_append(appended)
        for payload in result.appended:
            match payload:
                case PhaseChanged() if payload.from_phase is not payload.to_phase:
                    metrics.phase_changed(payload.from_phase, payload.to_phase)
                case LoadFailed() if payload.retry_at is not None:
                    metrics.load_retried()
                case PodSwitched():
                    metrics.pod_switched()
                case _:
                    pass
        for call in result.load_calls:
            metrics.observe_load(call.duration_ms / 1000, load_outcome(call))
        if not acting:
            return
        metrics.set_phase_counts(Counter(self.phases.values()))
        if result.finalized:
            metrics.forget(uid)
        else:
            metrics.set_adapter_phase(uid, result.namespace, result.name, self.phases.get(uid))
            if not result.conflict:  # after a conflict the pass's plan was not appended: the log says otherwise
                metrics.set_verified(uid, result.namespace, result.name, result.instances)


def result_label(requeue_after: timedelta | None) -> str:
    """controller-runtime's `result` for a reconcile that returned: a look again at once is `requeue`."""
    if requeue_after is None:
        return "success"
    return "requeue_after" if requeue_after > timedelta(0) else "requeue"


def load_outcome(call: CallOutcome) -> str:
    """The `outcome` label of one load call (`modeladapter.operator.controller.metrics.LOAD_OUTCOMES`)."""
    if call.error is None:
        return "succeeded"
    return "failed_retriable" if call.retriable else "failed"
