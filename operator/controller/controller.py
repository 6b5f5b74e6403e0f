"""The controller: informers feed a work queue, workers reconcile one adapter at a time each, forever.

`Controller.run()` keeps the cluster view current (always, so a standby is warm), and, while it may act
(`may_act`: it leads, or leader election is off), runs `concurrency` workers that take adapter uids from the
queue. A reconcile's answer sets the key's next visit (the earliest backoff, reconsideration, verification
or stability deadline); an error is logged and retried with a per-key backoff (0.5 s doubling to 30 s); a
slow safety resync revisits every adapter every `resync` seconds anyway. When the informers first sync, every
adapter is enqueued, and so is every stream of the log that is not finalized, so that adapters deleted
while the operator was away are cleaned up too.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Final

from modeladapter.operator.controller.cluster import ClusterView
from modeladapter.operator.kube.client import Kube
from modeladapter.operator.controller.queueing import ShutDown, WorkQueue
from modeladapter.operator.reconcile.reconciler import Reconciler
from modeladapter.store import SqlEventStore

log = logging.getLogger(__name__)

ERROR_BACKOFF_START: Final = 0.5
ERROR_BACKOFF_CAP: Final = 30.0
SAFETY_RESYNC_SECONDS: Final = 300.0


class Controller:
    def __init__(
        self,
        *,
        kube: Kube,
        store: SqlEventStore,
        make_reconciler: Callable[[ClusterView], Reconciler],
        namespace: str | None = None,
        concurrency: int = 8,
        resync: float = SAFETY_RESYNC_SECONDS,
    ) -> None:
        self.store = store
        self.namespace = namespace
        self.queue: WorkQueue[str] = WorkQueue()
        self.cluster = ClusterView(kube, self.queue.add, namespace=namespace)
        self.reconciler = make_reconciler(self.cluster)
        self.concurrency = concurrency
        self.resync = resync
        self.may_act = asyncio.Event()
        """Workers run only while this is set (the leader, or leader election is off)."""
        self.reconciles = 0
        self.errors = 0
        self._failures: dict[str, int] = {}
        self._last_activity = time.monotonic()
        self._shuffle = random.Random().shuffle

    @property
    def ready(self) -> bool:
        return self.cluster.synced

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.cluster.run(), name="informers")
            await self.cluster.wait_synced()
            self.cluster.seed_placements_from_status()
            await self._enqueue_everything()
            tasks.create_task(self._resync_loop(), name="resync")
            for number in range(self.concurrency):
                tasks.create_task(self._worker(), name=f"worker-{number}")

    async def _enqueue_everything(self) -> None:
        for uid in self.cluster.adapter_uids():
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
        live = set(self.cluster.adapter_uids())
        for stream in streams:
            if stream.finalized_at is None and stream.stream_id not in live:
                self.queue.add(stream.stream_id)  # deleted while we were away: clean up
        # In a new order at each start: after a restart every adapter is verified, and if the operator is
        # restarted again before it got through them all (a crash loop, a node that keeps dying), a fixed
        # order (the informers', by namespace and name) would leave the same adapters unverified every time.
        # Found by the chaos soak: team-b's adapters, listed last, kept a lost instance for 40 s of operator time.
        self.queue.reorder_ready(self._shuffle)

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.resync)
            for uid in self.cluster.adapter_uids():
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
                requeue = await self.reconciler.reconcile(uid)
                self.reconciles += 1
                self._failures.pop(uid, None)
                if requeue is not None:
                    self.queue.add(uid, after=requeue)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.errors += 1
                failures = self._failures[uid] = self._failures.get(uid, 0) + 1
                delay = min(ERROR_BACKOFF_START * 2 ** (failures - 1), ERROR_BACKOFF_CAP)
                log.exception("reconcile of %s failed (%d in a row); again in %.1fs", uid, failures, delay)
                self.queue.add(uid, after=delay)
            finally:
                self.queue.done(uid)
                self._last_activity = time.monotonic()
