"""The controller: informers feed a work queue, workers reconcile one adapter at a time each, forever.

`Controller.run()` keeps the cluster cache current (always, so a standby is warm), and, while it may act
(`may_act`: it leads, or leader election is off), runs `concurrency` workers that take adapter uids from the
queue. A reconcile's `Result` sets the key's next visit (the earliest backoff, reconsideration, verification
or stability deadline); an error is logged, counted by its kind (`modeladapter_reconcile_errors_total`; a step
the state machines rejected is `RejectedStep`, a bug) and retried with a per-key backoff (0.5 s doubling to
30 s); a slow safety resync revisits every adapter every `resync` seconds anyway. When the informers first
sync, every adapter is enqueued, and so is every stream of the log that is not finalized, so that adapters
deleted while the operator was away are cleaned up too.

Each reconcile runs in a log context naming the adapter and a fresh reconcile id, which its events carry too.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Final, cast

from modeladapter.fsm.events import LoadFailed, LoadSucceeded, PhaseChanged, PodSwitched
from modeladapter.fsm.phases import Phase
from modeladapter.operator.api.status import StatusDocument
from modeladapter.operator.controller.cache import ClusterCache
from modeladapter.operator.controller.logs import log_context
from modeladapter.operator.controller.metrics import OperatorMetrics
from modeladapter.operator.controller.queueing import ShutDown, WorkQueue
from modeladapter.operator.controller.routing import EventRouter
from modeladapter.operator.kube.client import KubeApi
from modeladapter.operator.reconcile.ports import ClusterReader
from modeladapter.operator.reconcile.reconciler import Reconciler
from modeladapter.operator.reconcile.results import Result
from modeladapter.store import SqlEventStore

log = logging.getLogger(__name__)

ERROR_BACKOFF_START: Final = 0.5
ERROR_BACKOFF_CAP: Final = 30.0
SAFETY_RESYNC_SECONDS: Final = 300.0


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
        self.queue: WorkQueue[str] = WorkQueue()
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
        """Workers run only while this is set (the leader, or leader election is off)."""
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

    async def run(self) -> None:
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
                await self._reconcile(uid)
            finally:
                self.queue.done(uid)
                self._last_activity = time.monotonic()

    async def _reconcile(self, uid: str) -> None:
        reconcile_id = uuid.uuid4().hex[:16]
        metadata = (self.cache.adapter(uid) or {}).get("metadata") or {}
        name = f"{metadata.get('namespace')}/{metadata.get('name')}" if metadata else None
        started = time.perf_counter()
        try:
            with log_context(adapter=name, uid=uid, reconcile_id=reconcile_id):
                result = await self.reconciler.reconcile(uid, reconcile_id=reconcile_id)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.errors += 1
            if self.metrics is not None:
                self.metrics.reconcile_failed(type(error).__name__)
            failures = self._failures[uid] = self._failures.get(uid, 0) + 1
            delay = min(ERROR_BACKOFF_START * 2 ** (failures - 1), ERROR_BACKOFF_CAP)
            log.exception("reconcile of %s failed (%d in a row); again in %.1fs", uid, failures, delay)
            self.queue.add(uid, after=delay)
            return
        self.reconciles += 1
        self._failures.pop(uid, None)
        self._count(uid, result, time.perf_counter() - started)
        if result.requeue_after is not None:
            self.queue.add(uid, after=result.requeue_after.total_seconds())

    def _count(self, uid: str, result: Result, seconds: float) -> None:
        if result.finalized:
            self.phases.pop(uid, None)
        elif result.phase is not None:
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
                case LoadSucceeded() if payload.duration_ms:
                    metrics.observe_load(payload.duration_ms / 1000)
                case LoadFailed() if payload.retry_at is not None:
                    metrics.load_retried()
                case PodSwitched():
                    metrics.pod_switched()
                case _:
                    pass
        metrics.set_phase_counts(Counter(self.phases.values()))
        if result.finalized:
            metrics.forget(uid)
        elif not result.conflict:  # after a conflict the pass's plan was not appended: the log says otherwise
            metrics.set_verified(uid, result.namespace, result.name, result.instances)
