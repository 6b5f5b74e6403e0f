"""`modeladapter run`: the operator process, from settings to a clean exit.

Start-up: connect to the API server; open the event log and migrate it (a database that is not reachable yet
is retried, with the reason logged and `/readyz` failing, never a crash; one migrated by a newer version is
a configuration error, exit 2); serve `/metrics`, `/healthz` and `/readyz`; start the informers. Then either
campaign for the leader Lease (`--leader-election`, the default) and act only while leading, or act at once.

Losing the Lease ends the process with status 1, before another replica can take over; Kubernetes restarts it
and it campaigns again. SIGTERM and SIGINT stop it cleanly: workers are cancelled (a reconcile in flight
stops at its next await; everything it appended stays, and the next leader folds the log), the Lease is
released so a standby takes over at once, connections are closed, and the exit status is 0. Each step of the
stop has a bound (`STOP_STEP_SECONDS`), so that a stuck one cannot outlast Kubernetes' grace period unseen:
a step that overruns is logged with the stacks of the tasks still running, and the stop goes on. The log
says how long each step took.

`Operator` is the same thing as an object, so that tests and `modeladapter sandbox` can run it in-process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import traceback
from collections.abc import Awaitable, Iterable
from datetime import timedelta
from types import FrameType
from typing import Final

from modeladapter import migrations
from modeladapter.adapters.connections import EngineConnections
from modeladapter.operator.controller.controller import Controller
from modeladapter.operator.controller.leadership import LeaderElector
from modeladapter.operator.controller.metrics import OperatorMetrics
from modeladapter.operator.controller.probes import CheckResult, ProbeServer
from modeladapter.operator.controller.settings import OperatorSettings, parse_parent
from modeladapter.operator.kube.client import Kube
from modeladapter.operator.kube.events import EventRecorder
from modeladapter.operator.reconcile.ports import ClusterReader
from modeladapter.operator.reconcile.reconciler import Reconciler
from modeladapter.operator.reconcile.settings import ReconcileSettings
from modeladapter.store import SchemaTooNew, SqlEventStore, create_engine
from modeladapter.store.engine import redact_url

log = logging.getLogger(__name__)

LEADERSHIP_LOST: Final = 1
CONFIGURATION_ERROR: Final = 2
DATABASE_RETRY_CAP: Final = 30.0
STOP_STEP_SECONDS: Final = 5.0
"""The longest any one step of a clean stop may take; Kubernetes' default grace period is 30 s."""


class Operator:
    def __init__(self, settings: OperatorSettings, *, probes: bool = True) -> None:
        self.settings = settings
        self.metrics = OperatorMetrics()
        self.serve_probes = probes
        self.controller: Controller | None = None
        self.elector: LeaderElector | None = None
        self.database_ready = False
        self._stopping = asyncio.Event()
        self._stop_steps: dict[str, float] = {}
        self._stuck = False
        """Some task did not end when cancelled at the stop."""

    def stop(self, reason: str = "asked to") -> None:
        """Ask for a clean stop (what SIGTERM does)."""
        if not self._stopping.is_set():
            log.info("stopping: %s", reason)
        self._stopping.set()

    def healthy(self) -> bool | CheckResult:
        """About the process: an event log that cannot be written is a readiness matter (a restart would not
        mend a full disk), so reconciles failing for that alone do not make the process unhealthy."""
        controller = self.controller
        if controller is None or not controller.reconciler.journal.health.writable:
            return True
        if controller.errors and not controller.reconciles:
            return CheckResult.failing("every reconcile so far has failed")
        return True

    def ready(self) -> bool | CheckResult:
        if not self.database_ready:
            return CheckResult.failing("the event log is not reachable yet")
        if self.controller is None or not self.controller.ready:
            return CheckResult.failing("the caches are not synced yet")
        health = self.controller.reconciler.journal.health
        if not health.writable:
            return CheckResult.failing(f"the event log cannot be written ({health.last_error})")
        return True

    async def run(self) -> int:
        settings = self.settings
        probes = ProbeServer(settings.probe_address, metrics=self.metrics, is_healthy=self.healthy, is_ready=self.ready)
        if self.serve_probes:
            await probes.start()
        kube = await Kube.connect(str(settings.kubeconfig) if settings.kubeconfig else None)
        engine = create_engine(settings.database_url)
        engines = EngineConnections()
        store = SqlEventStore(engine)
        try:
            try:
                await self._migrate(engine)
            except SchemaTooNew as error:
                log.error("%s", error)
                return CONFIGURATION_ERROR
            if self._stopping.is_set():
                return 0
            reconcile_settings = ReconcileSettings(
                stability_window=timedelta(seconds=settings.stability_window),
                backoff=settings.backoff_policy,
                verify_interval=timedelta(seconds=settings.verify_interval),
                drain=timedelta(seconds=settings.drain_seconds),
                runtime_sidecar=settings.enable_runtime_sidecar,
                http_route_parent=parse_parent(settings.http_route_parent) if settings.http_route_parent else None,
            )
            recorder = EventRecorder(kube, reporting_instance=settings.identity)

            def reconciler(cluster: ClusterReader) -> Reconciler:
                return Reconciler(
                    kube=kube,
                    store=store,
                    engines=engines,
                    cluster=cluster,
                    recorder=recorder,
                    settings=reconcile_settings,
                )

            self.controller = Controller(
                kube=kube,
                store=store,
                make_reconciler=reconciler,
                namespace=settings.namespace,
                concurrency=settings.concurrency,
                metrics=self.metrics,
                http_routes=reconcile_settings.http_route_parent is not None,
            )
            self.controller.reconciler.journal.health.on_change = self.metrics.set_event_log_writable
            return await self._operate(kube)
        finally:
            began = time.monotonic()
            if self.elector is not None and not self._stuck:
                await self._stop_step("lease", self.elector.release())
            await self._stop_step("engine connections", engines.aclose())
            await self._stop_step("event log", store.close())
            await self._stop_step("API connections", kube.close())
            if self.serve_probes:
                await self._stop_step("probes", probes.stop())
            log.info(
                "stopped in %.2fs (%s)",
                time.monotonic() - began + self._stop_steps.pop("workers", 0.0),
                ", ".join(f"{step} {seconds:.2f}s" for step, seconds in self._stop_steps.items()),
            )

    async def _stop_step(self, step: str, work: Awaitable[object]) -> None:
        """One step of the stop, bounded by `STOP_STEP_SECONDS`; its failure is logged, never raised."""
        began = time.monotonic()
        task = asyncio.ensure_future(work)
        done, _ = await asyncio.wait({task}, timeout=STOP_STEP_SECONDS)
        if not done:
            log.error(
                "stopping: %s did not finish within %.0fs; going on without it. Tasks still running:\n%s",
                step,
                STOP_STEP_SECONDS,
                describe_tasks(),
            )
        elif not task.cancelled() and (error := task.exception()) is not None:  # a stop goes on whatever it met
            log.warning("stopping: %s failed: %s: %s", step, type(error).__name__, error)
        self._stop_steps[step] = time.monotonic() - began

    async def _migrate(self, engine: object) -> None:
        """Migrate the event log, waiting for the database as long as it takes (or until told to stop)."""
        from sqlalchemy.ext.asyncio import AsyncEngine

        assert isinstance(engine, AsyncEngine)
        delay = 1.0
        while not self._stopping.is_set():
            try:
                await migrations.upgrade(engine)
            except SchemaTooNew:
                raise
            except Exception as error:  # any failure to reach or migrate the database is retried
                log.warning(
                    "event log %s not usable yet (%s: %s); retrying in %.0fs",
                    redact_url(self.settings.database_url),
                    type(error).__name__,
                    error,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, DATABASE_RETRY_CAP)
            else:
                self.database_ready = True
                return

    async def _operate(self, kube: Kube) -> int:
        assert self.controller is not None
        settings = self.settings
        controller = self.controller
        work = asyncio.create_task(controller.run(), name="controller")
        stopping = asyncio.create_task(self._stopping.wait(), name="stop-signal")
        tasks: list[asyncio.Task[object]] = [work, stopping]
        lost: asyncio.Task[object] | None = None
        if settings.leader_election:
            self.elector = LeaderElector(
                kube,
                namespace=settings.lease_namespace,
                name=settings.lease_name,
                identity=settings.identity,
                lease_duration=settings.lease_duration,
                renew_deadline=settings.renew_deadline,
                retry_period=settings.retry_period,
            )
            lease = settings.lease_name

            def leadership_changed(leading: bool) -> None:
                self.metrics.controller.set_leading(lease, leading)
                if not leading:  # at the campaign's start, and at once when the lease is lost or released
                    controller.stand_by()

            self.elector.on_change = leadership_changed
            # The campaign ends only when the lease is lost (or the campaign itself broke): either way, stop.
            lost = asyncio.create_task(self.elector.run(), name="leader-election")
            tasks += [lost, asyncio.create_task(self._follow_leadership(self.elector), name="leadership")]
        else:
            controller.act()
            self.metrics.controller.set_leading(settings.lease_name, True)  # it acts as if it led (documented)
        try:
            done, _ = await asyncio.wait(
                {work, stopping, *([lost] if lost else [])}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            controller.stand_by()
            began = time.monotonic()
            for task in tasks:
                task.cancel()
            _, stuck = await asyncio.wait(tasks, timeout=STOP_STEP_SECONDS)
            if stuck:
                self._stuck = True
                log.error(
                    "stopping: %d task(s) did not end within %.0fs of being cancelled; going on without them, "
                    "and leaving the Lease to expire rather than let a standby act beside them:\n%s",
                    len(stuck),
                    STOP_STEP_SECONDS,
                    describe_tasks(stuck),
                )
            self._stop_steps["workers"] = time.monotonic() - began
        if lost is not None and lost in done:
            problem = None if lost.cancelled() else lost.exception()
            log.error("leadership lost%s; stopping so that only one replica acts", f" ({problem!r})" if problem else "")
            return LEADERSHIP_LOST
        if work in done and not work.cancelled() and work.exception() is not None:
            log.error("the controller stopped: %r", work.exception())
            return LEADERSHIP_LOST
        return 0

    async def _follow_leadership(self, elector: LeaderElector) -> None:
        assert self.controller is not None
        await elector.leading.wait()
        self.controller.act()


def describe_tasks(tasks: Iterable[asyncio.Task[object]] | None = None) -> str:
    """The name and stack of each task (all of this loop's but the caller's by default), for a stop that hangs."""
    chosen = list(tasks) if tasks is not None else [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    lines: list[str] = []
    for task in sorted(chosen, key=lambda t: t.get_name()):
        lines.append(f"  task {task.get_name()}:")
        lines += [f"    {line}" for frame in task.get_stack() for line in _frame_lines(frame)]
    return "\n".join(lines)


def _frame_lines(frame: FrameType) -> list[str]:
    return [line.rstrip("\n") for line in traceback.format_stack(frame, limit=1)]


async def run_operator(settings: OperatorSettings) -> int:
    """The `modeladapter run` entry point: run until SIGTERM/SIGINT, or until leadership is lost."""
    operator = Operator(settings)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, operator.stop, f"{signum.name} received")
    log.info(
        "modeladapter operator %s starting (namespace %s, event log %s, leader election %s)",
        settings.identity,
        settings.namespace or "all",
        redact_url(settings.database_url),
        "on" if settings.leader_election else "off",
    )
    code = await operator.run()
    await _end_the_rest()
    return code


async def _end_the_rest() -> None:
    """Cancel what is left of this loop's tasks, within `STOP_STEP_SECONDS`. `asyncio.run` would wait for them
    without a bound: if one does not end, the process exits here, after saying which (Kubernetes would
    SIGKILL it at the end of the grace period anyway, without a word)."""
    rest = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in rest:
        task.cancel()
    _, stuck = await asyncio.wait(rest, timeout=STOP_STEP_SECONDS) if rest else (set(), set())
    if stuck:
        log.error("stopping: %d task(s) would not end; exiting without them:\n%s", len(stuck), describe_tasks(stuck))
        logging.shutdown()
        os._exit(LEADERSHIP_LOST)
