"""The operator's Prometheus metrics, on a registry of their own, behind small methods the reconcile core calls.

Each `OperatorMetrics` owns a `CollectorRegistry`: nothing goes to prometheus-client's global registry, so
tests, and two operators in one process (leader-election tests), each count their own. `ProbeServer`
(`modeladapter.operator.controller.probes`) serves `metrics.registry` at `/metrics`. controller-runtime's
standard metrics (`controller_runtime_*`, `workqueue_*`, `leader_election_master_status`) are on it too, from
`metrics.controller` (`modeladapter.operator.controller.controller_metrics`); the project's own are these:

| metric | type | labels | what |
|---|---|---|---|
| `modeladapter_build_info` | gauge | `version`, `python_version` | 1, naming the running build |
| `modeladapter_adapters` | gauge | `phase` | ModelAdapters in each phase (every phase, 0 included) |
| `modeladapter_adapter_phase` | gauge | `namespace`, `adapter`, `phase` | 1 for each adapter, on its current phase only |
| `modeladapter_phase_transitions_total` | counter | `from_phase`, `to_phase` | phase changes (`None` = a new adapter) |
| `modeladapter_load_duration_seconds` | histogram | `outcome` | one load call to an engine (`LOAD_OUTCOMES`) |
| `modeladapter_load_retries_total` | counter | | failed loads that will be retried on the same pod |
| `modeladapter_pod_switches_total` | counter | | placements moved to another pod after exhausting retries |
| `modeladapter_reconcile_duration_seconds` | histogram | | one reconcile of one adapter |
| `modeladapter_event_append_duration_seconds` | histogram | | one `append` to the event log |
| `modeladapter_event_log_writable` | gauge | | 1 while appends to the event log succeed, 0 after a failed one |
| `modeladapter_reconcile_errors_total` | counter | `reason` | reconciles that ended in an error, by the error's class |
| `modeladapter_adapter_verified` | gauge | `namespace`, `adapter`, `pod` | 1 for each pod whose engine the operator verified serves the adapter (an instance); the series goes when the instance does |

The process's own `process_*`, `python_gc_*` and `python_info` metrics are on the registry too.

Label values must stay few: `reason` is a CamelCase word such as `ApiServerUnavailable`, never a message.
Two metrics are per object. `modeladapter_adapter_verified`, for a LoRA-affinity router or a dashboard that
wants to know where an adapter is loaded: one series per instance, so at most the sum of the adapters' replicas
(10 adapters on 3 pods each: 30 series), never more than adapters x pods. `modeladapter_adapter_phase`, for
alerts on one adapter (`Failed`, or not `Running` for long): one series per adapter, on its current phase; the
old phase's series goes when the phase changes and all go when the adapter does, so a change is a new series
and the cardinality is the number of adapters the leader reconciled. Only the leader exports them: a replica
that stops leading drops them all (`forget_adapters`), and a standby has none.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from modeladapter.fsm.phases import Phase
from modeladapter.operator.controller.controller_metrics import ControllerRuntimeMetrics

NO_PHASE: Final = "None"
"""The `from_phase` label of an adapter's first phase (the event log's `from_phase: null`)."""

LOAD_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""1 ms (a local engine answering at once) to 300 s (a large adapter pulled from object storage)."""

RECONCILE_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""A reconcile with nothing to do takes milliseconds; one that waits on engine calls may take tens of seconds."""

APPEND_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""A SQLite append takes about a millisecond; seconds mean lock contention or a slow database."""

LOAD_OUTCOMES: Final = ("succeeded", "failed_retriable", "failed")
"""The `outcome` of a load call: `succeeded` (loaded and listed by the engine), `failed_retriable` (a failure
worth another attempt on the same pod: unreachable, a timeout, a 5xx), `failed` (the engine refused the adapter
itself, e.g. a bad artifact: no more attempts on that pod)."""


def build_version() -> str:
    """The installed package's version (`unknown` when run from a tree that is not installed)."""
    try:
        return version("modeladapter")
    except PackageNotFoundError:
        return "unknown"


class OperatorMetrics:
    """The metrics of one operator process. Every method is cheap and safe to call from any task."""

    def __init__(self, *, process_metrics: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        """The registry `/metrics` serves; only this object's metrics are on it."""
        if process_metrics:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        self.controller = ControllerRuntimeMetrics(self.registry)
        """controller-runtime's standard metrics, on the same registry."""

        Gauge(
            "modeladapter_build_info",
            "Always 1; the labels name the running build.",
            ["version", "python_version"],
            registry=self.registry,
        ).labels(version=build_version(), python_version=platform.python_version()).set(1)
        self._adapters = Gauge(
            "modeladapter_adapters", "ModelAdapters by status phase.", ["phase"], registry=self.registry
        )
        self._transitions = Counter(
            "modeladapter_phase_transitions_total",
            "ModelAdapter phase changes, by the phase left and the phase entered.",
            ["from_phase", "to_phase"],
            registry=self.registry,
        )
        self._load_duration = Histogram(
            "modeladapter_load_duration_seconds",
            "Duration of one load call to an inference engine, by outcome.",
            ["outcome"],
            buckets=LOAD_BUCKETS,
            registry=self.registry,
        )
        for outcome in LOAD_OUTCOMES:  # present from the start, so a rate over a failed outcome reads 0
            self._load_duration.labels(outcome=outcome)
        self._load_retries = Counter(
            "modeladapter_load_retries_total",
            "Failed loads that will be retried on the same pod after a backoff.",
            registry=self.registry,
        )
        self._pod_switches = Counter(
            "modeladapter_pod_switches_total",
            "Placements moved to another pod after the retries on a pod ran out.",
            registry=self.registry,
        )
        self._reconcile_duration = Histogram(
            "modeladapter_reconcile_duration_seconds",
            "Duration of one reconcile of one ModelAdapter.",
            buckets=RECONCILE_BUCKETS,
            registry=self.registry,
        )
        self._append_duration = Histogram(
            "modeladapter_event_append_duration_seconds",
            "Duration of one append of facts and decisions to the event log.",
            buckets=APPEND_BUCKETS,
            registry=self.registry,
        )
        self._reconcile_errors = Counter(
            "modeladapter_reconcile_errors_total",
            "Reconciles that ended in an error, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self._log_writable = Gauge(
            "modeladapter_event_log_writable",
            "1 while appends to the event log succeed, 0 from a failed write until one succeeds again.",
            registry=self.registry,
        )
        self._log_writable.set(1)
        self._verified = Gauge(
            "modeladapter_adapter_verified",
            "1 for each pod whose engine was verified to serve the adapter (its instances).",
            ["namespace", "adapter", "pod"],
            registry=self.registry,
        )
        self._verified_series: dict[str, set[tuple[str, str, str]]] = {}
        """Per adapter uid, the label sets it has on `modeladapter_adapter_verified`."""
        self._phase = Gauge(
            "modeladapter_adapter_phase",
            "1 for each ModelAdapter, on its current status phase only.",
            ["namespace", "adapter", "phase"],
            registry=self.registry,
        )
        self._phase_series: dict[str, tuple[str, str, str]] = {}
        """Per adapter uid, its label set on `modeladapter_adapter_phase`."""
        # Every phase is present from the start, so a dashboard shows 0 rather than no data.
        self.set_phase_counts({})

    # --- adapters and phases -------------------------------------------------------------------------------

    def set_phase_counts(self, counts: Mapping[Phase, int]) -> None:
        """How many ModelAdapters are in each phase now; a phase left out is set to 0."""
        unknown = set(counts) - set(Phase)
        if unknown:
            raise ValueError(f"not ModelAdapter phases: {sorted(map(str, unknown))}")
        for phase in Phase:
            self._adapters.labels(phase=phase.value).set(counts.get(phase, 0))

    def phase_changed(self, from_phase: Phase | None, to_phase: Phase) -> None:
        """An adapter changed phase (`from_phase` None: its first phase). Call once per recorded PhaseChanged."""
        source = NO_PHASE if from_phase is None else Phase(from_phase).value
        self._transitions.labels(from_phase=source, to_phase=Phase(to_phase).value).inc()

    def set_verified(self, uid: str, namespace: str, adapter: str, pods: tuple[str, ...]) -> None:
        """The adapter's instances now (an empty tuple, or `forget`, when it has none or is gone)."""
        now = {(namespace, adapter, pod) for pod in pods}
        for labels in self._verified_series.get(uid, set()) - now:
            self._verified.remove(*labels)
        for labels in now:
            self._verified.labels(*labels).set(1)
        if now:
            self._verified_series[uid] = now
        else:
            self._verified_series.pop(uid, None)

    def set_adapter_phase(self, uid: str, namespace: str, adapter: str, phase: Phase | None) -> None:
        """The adapter's phase now (None: none decided yet); its series on another phase goes."""
        now = None if phase is None else (namespace, adapter, Phase(phase).value)
        before = self._phase_series.pop(uid, None)
        if before is not None and before != now:
            self._phase.remove(*before)
        if now is not None:
            self._phase.labels(*now).set(1)
            self._phase_series[uid] = now

    def forget(self, uid: str) -> None:
        """The adapter is gone: its per-pod series and its phase series go too."""
        self.set_verified(uid, "", "", ())
        self.set_adapter_phase(uid, "", "", None)

    def forget_adapters(self) -> None:
        """This replica stopped leading: every per-adapter series goes and the phase counts read 0, so that a
        former leader's last word does not stand beside the new leader's (alerts on one adapter, sums)."""
        for uid in list(self._verified_series) + list(self._phase_series):
            self.forget(uid)
        self.set_phase_counts({})

    # --- loads ---------------------------------------------------------------------------------------------

    def observe_load(self, seconds: float, outcome: str) -> None:
        """One load call to an engine took this long and came to `outcome` (one of `LOAD_OUTCOMES`)."""
        if outcome not in LOAD_OUTCOMES:
            raise ValueError(f"not a load outcome: {outcome!r} (one of {', '.join(LOAD_OUTCOMES)})")
        self._load_duration.labels(outcome=outcome).observe(seconds)

    def load_retried(self) -> None:
        """A load failed and will be retried on the same pod after its backoff."""
        self._load_retries.inc()

    def pod_switched(self) -> None:
        """A placement gave up on a pod and moved to another."""
        self._pod_switches.inc()

    # --- reconciles and the event log ----------------------------------------------------------------------

    def observe_reconcile(self, seconds: float) -> None:
        """One reconcile of one adapter took this long (whatever its outcome)."""
        self._reconcile_duration.observe(seconds)

    def reconcile_failed(self, reason: str) -> None:
        """A reconcile ended in an error; `reason` is a short CamelCase word (few distinct values)."""
        self._reconcile_errors.labels(reason=reason).inc()

    def observe_event_append(self, seconds: float) -> None:
        """One append to the event log took this long."""
        self._append_duration.observe(seconds)

    def set_event_log_writable(self, writable: bool) -> None:
        """Appends to the event log fail (False) or succeed again (True)."""
        self._log_writable.set(1 if writable else 0)

    # --- exposition ----------------------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format (what `/metrics` serves to a plain scraper)."""
        return generate_latest(self.registry)
