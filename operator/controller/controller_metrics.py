"""controller-runtime's standard metrics, with its names, types, labels and buckets, so that the dashboards and
alerts written for every Go operator work on this one too.

`ControllerRuntimeMetrics` puts them on the `OperatorMetrics` registry; the controller reports its reconciles
and workers, the work queue (`modeladapter.operator.controller.queueing`, a `QueueObserver`) its adds, waits and
work, and the leader elector whether it leads. The controller is `modeladapter` and so is its queue.

| metric | type | labels | what |
|---|---|---|---|
| `controller_runtime_reconcile_total` | counter | `controller`, `result` | reconciles by result (`success`, `error`, `requeue`, `requeue_after`; all four exported from the start) |
| `controller_runtime_reconcile_errors_total` | counter | `controller` | reconciles that raised |
| `controller_runtime_reconcile_time_seconds` | histogram | `controller` | one reconcile, whatever its result (5 ms to 60 s) |
| `controller_runtime_max_concurrent_reconciles` | gauge | `controller` | the workers (`--concurrency`) |
| `controller_runtime_active_workers` | gauge | `controller` | workers reconciling now |
| `workqueue_depth` | gauge | `name`, `controller` | keys waiting to be handed out (not those waiting for a timer); 0 on a standby |
| `workqueue_adds_total` | counter | `name`, `controller` | keys that started waiting (a delayed add when its timer fires) |
| `workqueue_retries_total` | counter | `name`, `controller` | delayed adds (client-go's `AddAfter`, whatever the delay) |
| `workqueue_queue_duration_seconds` | histogram | `name`, `controller` | from an add (or the takeover) to the hand-out (10 ns to 1000 s) |
| `workqueue_work_duration_seconds` | histogram | `name`, `controller` | from the hand-out to `done` (10 ns to 1000 s) |
| `workqueue_unfinished_work_seconds` | gauge | `name`, `controller` | the seconds of work in flight so far, summed (at scrape time); 0 on a standby |
| `workqueue_longest_running_processor_seconds` | gauge | `name`, `controller` | the oldest work in flight (at scrape time); 0 on a standby |
| `modeladapter_reconcile_rests_total` | counter | | adds held back because the adapter ran several times in a row just before (`Controller`'s `QUICK_RUN_REST`): a steady rate is a reconcile asking to run again at once |
| `leader_election_master_status` | gauge | `name` | 1 while this replica leads the Lease `name`, 0 while it campaigns |

How this controller maps onto controller-runtime's: a reconcile that raises is `result="error"`, counted in
`controller_runtime_reconcile_errors_total` and re-added with a per-key backoff (controller-runtime's
`AddRateLimited`). A `Result` with a `requeue_after` above 0 (a backoff, a verification, a stability window)
is `requeue_after` (its `AddAfter`); one of 0 (another writer appended first: look again at once) is
`requeue` (its `Requeue: true`), added back at once; None is `success`, not added back. Each of the first
three is a retry: client-go's `AddAfter`, which `AddRateLimited` calls, counts one before it looks at the
delay, so even a delay of 0 is one (the queue's `add_after`).

Only the leader runs a controller in controller-runtime, so a standby exports no queue. Here a standby keeps
its informers and queue warm, and the queue reports to these metrics only from `Controller.act()` (it leads)
until `Controller.stand_by()`: meanwhile the gauges read 0 and nothing is counted. At the takeover the keys
already waiting count as added then, and their queue time starts then, as if the controller started there,
so `workqueue_queue_duration_seconds` never holds a standby's idle minutes. controller-runtime's
`controller_runtime_terminal_reconcile_errors_total` and `controller_runtime_reconcile_panics_total` are not
exported: every error here is retried, and Python has no panics. The depth has no `priority` label: the queue
has no priorities (controller-runtime exports `priority=""`, which Prometheus stores as no label at all).

`leader_election_master_status` goes to 0 when the campaign starts, 1 when the Lease is acquired, 0 when it is
lost or released. With leader election off it is 1 (the replica acts as if it led, so the alert for two
leaders also catches two replicas run without election); controller-runtime exports nothing then.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

CONTROLLER: Final = "modeladapter"
"""The `controller` label, and the work queue's `name`."""

RESULTS: Final = ("success", "error", "requeue", "requeue_after")
"""controller-runtime's `result` label values."""

RECONCILE_TIME_BUCKETS: Final = (
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    *(1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0, 25.0, 30.0),
    *(40.0, 50.0, 60.0),
)
"""controller-runtime's buckets for `controller_runtime_reconcile_time_seconds`."""

WORKQUEUE_BUCKETS: Final = tuple(float(f"1e{exponent}") for exponent in range(-8, 4))
"""client-go's `ExponentialBuckets(10e-9, 10, 12)`: 10 ns to 1000 s."""


class ControllerRuntimeMetrics:
    """controller-runtime's metrics on `registry`; every method is cheap and synchronous."""

    def __init__(self, registry: CollectorRegistry, *, controller: str = CONTROLLER) -> None:
        self.controller = controller
        queue = {"name": controller, "controller": controller}
        self._reconciles = Counter(
            "controller_runtime_reconcile_total",
            "Total number of reconciliations per controller",
            ["controller", "result"],
            registry=registry,
        )
        for result in RESULTS:  # as controller-runtime does when a controller starts
            self._reconciles.labels(controller=controller, result=result)
        self._errors = Counter(
            "controller_runtime_reconcile_errors_total",
            "Total number of reconciliation errors per controller",
            ["controller"],
            registry=registry,
        ).labels(controller=controller)
        self._reconcile_time = Histogram(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            ["controller"],
            buckets=RECONCILE_TIME_BUCKETS,
            registry=registry,
        ).labels(controller=controller)
        self._max_workers = Gauge(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller",
            ["controller"],
            registry=registry,
        ).labels(controller=controller)
        self._active_workers = Gauge(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            ["controller"],
            registry=registry,
        ).labels(controller=controller)
        self._adds = Counter(
            "workqueue_adds_total", "Total number of adds handled by workqueue", list(queue), registry=registry
        ).labels(**queue)
        self._retries = Counter(
            "workqueue_retries_total", "Total number of retries handled by workqueue", list(queue), registry=registry
        ).labels(**queue)
        self._queue_duration = Histogram(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            list(queue),
            buckets=WORKQUEUE_BUCKETS,
            registry=registry,
        ).labels(**queue)
        self._work_duration = Histogram(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes.",
            list(queue),
            buckets=WORKQUEUE_BUCKETS,
            registry=registry,
        ).labels(**queue)
        self._rests = Counter(
            "modeladapter_reconcile_rests_total",
            "Adds held back because the adapter had just run several times in a row (a rest between quick runs).",
            registry=registry,
        )
        self._leader = Gauge(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates "
            "master. 'name' is the string used to identify the lease. Please make sure to group by name.",
            ["name"],
            registry=registry,
        )
        self._queue_gauges = QueueGauges(queue)
        registry.register(self._queue_gauges)

    # --- the controller ------------------------------------------------------------------------------------

    def set_max_concurrent_reconciles(self, workers: int) -> None:
        self._max_workers.set(workers)

    def worker_started(self) -> None:
        """A worker began a reconcile."""
        self._active_workers.inc()

    def worker_finished(self) -> None:
        """A worker's reconcile ended, whatever its result."""
        self._active_workers.dec()

    def reconciled(self, result: str, seconds: float) -> None:
        """One reconcile ended with `result` (one of `RESULTS`) after `seconds`."""
        if result not in RESULTS:
            raise ValueError(f"not a controller-runtime reconcile result: {result!r} (one of {', '.join(RESULTS)})")
        self._reconciles.labels(controller=self.controller, result=result).inc()
        if result == "error":
            self._errors.inc()
        self._reconcile_time.observe(seconds)

    # --- the work queue (a QueueObserver) ------------------------------------------------------------------

    def watch_queue(self, queue: WatchedQueue | None) -> None:
        """The queue the gauges computed at scrape time read (a `WorkQueue`); None, as at the start: they read 0."""
        self._queue_gauges.queue = queue

    def added(self) -> None:
        self._adds.inc()

    def retried(self) -> None:
        self._retries.inc()

    def started(self, waited: float) -> None:
        self._queue_duration.observe(waited)

    def finished(self, worked: float) -> None:
        self._work_duration.observe(worked)

    def rested(self) -> None:
        self._rests.inc()

    # --- leader election -----------------------------------------------------------------------------------

    def set_leading(self, lease: str, leading: bool) -> None:
        """This replica leads the Lease named `lease` (True), or campaigns for it (False)."""
        self._leader.labels(name=lease).set(1 if leading else 0)


class WatchedQueue(Protocol):
    """What the gauges read from a work queue (`modeladapter.operator.controller.queueing.WorkQueue`)."""

    @property
    def depth(self) -> int: ...

    def processing_ages(self) -> list[float]: ...


class QueueGauges:
    """`workqueue_depth`, `workqueue_unfinished_work_seconds` and `workqueue_longest_running_processor_seconds`,
    read from the queue at each scrape (client-go updates the last two every 500 ms instead); 0 while no queue
    is watched (a standby)."""

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels
        self.queue: WatchedQueue | None = None

    def depth(self) -> int:
        return self.queue.depth if self.queue is not None else 0

    def collect(self) -> Iterable[Metric]:
        names, values = list(self.labels), list(self.labels.values())
        ages = self.queue.processing_ages() if self.queue is not None else []
        families = (
            ("workqueue_depth", "Current depth of workqueue by workqueue and priority", self.depth()),
            (
                "workqueue_unfinished_work_seconds",
                "How many seconds of work has been done that is in progress and hasn't been observed by "
                "work_duration. Large values indicate stuck threads. One can deduce the number of stuck threads "
                "by observing the rate at which this increases.",
                sum(ages),
            ),
            (
                "workqueue_longest_running_processor_seconds",
                "How many seconds has the longest running processor for workqueue been running.",
                max(ages, default=0.0),
            ),
        )
        for name, documentation, value in families:
            family = GaugeMetricFamily(name, documentation, labels=names)
            family.add_metric(values, float(value))
            yield family
