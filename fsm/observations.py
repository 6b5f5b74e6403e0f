"""What the planner is given: the spec as far as planning goes, the pods as the operator saw them, the engines'
listings, and the settings. Plain frozen data; the operator builds it from the cluster, nothing here reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from modeladapter.fsm.backoff import DEFAULT_BACKOFF, BackoffPolicy
from modeladapter.fsm.health import DEFAULT_STABILITY, PodHealth, PodView, assess_pod
from modeladapter.fsm.scheduling import SchedulingPolicy


@dataclass(frozen=True, slots=True)
class Desired:
    """What the spec asks for, as far as placing and loading go."""

    artifact_url: str
    replicas: int | None
    """None: every healthy matching pod."""
    policy: SchedulingPolicy
    lora_name: str
    """The name the engines serve; with the pod it breaks the policies' ties."""
    selector: str
    """The pod selector as `kubectl` writes it, for the messages that say nothing matches."""
    max_unavailable: int = 1
    """`spec.updateStrategy.maxUnavailable`: instances that may be out for their update at once."""
    max_surge: int = 1
    """`spec.updateStrategy.maxSurge`: with `replicas`, extra pods an update may load the new artifact on first."""


@dataclass(frozen=True, slots=True)
class SeenPod:
    """One pod of the adapter's namespace, as the operator saw it this pass."""

    view: PodView
    matches: bool
    """The adapter's selector matches the pod's labels."""
    load: int = 0
    """Adapters of other ModelAdapters placed on the pod (the operator's placement index)."""

    @property
    def name(self) -> str:
        return self.view.name


class Listed(StrEnum):
    """What a pod's engine said about the adapter when its `/v1/models` was read."""

    LOADED = "Loaded"
    """Listed, from the expected artifact."""
    MISSING = "Missing"
    """Not listed: never loaded, unloaded (by anyone), or the engine restarted (vLLM lists what it evicted)."""
    OTHER_PATH = "OtherPath"
    """Listed under this name, from another artifact."""
    UNREACHABLE = "Unreachable"
    """The engine did not answer."""


@dataclass(frozen=True, slots=True)
class Listing:
    listed: Listed
    error: str = ""
    """Why the engine could not be asked (`Unreachable` only)."""


@dataclass(frozen=True, slots=True)
class PlanSettings:
    stability_window: timedelta = DEFAULT_STABILITY
    """A pod must have been Ready this long to be given an adapter."""
    backoff: BackoffPolicy = DEFAULT_BACKOFF
    unload_timeout: timedelta = timedelta(seconds=60)
    """A failing unload is abandoned after this long."""
    verify_interval: timedelta = timedelta(seconds=30)
    """A loaded placement is checked against its engine's `/v1/models` this often."""


@dataclass(frozen=True, slots=True)
class Observation:
    """The world one plan is made for."""

    now: datetime
    namespace: str
    name: str
    pods: Mapping[str, SeenPod] = field(default_factory=dict)
    """Every pod of the adapter's namespace, by name; a placement whose pod is not here is gone."""
    seed: str = ""
    """For the `random` policy: a decision must be replayable from what it was given."""

    def without_pods(self) -> Observation:
        """The same moment, with no pod in sight (deadlines that depend on pods are none of the caller's)."""
        return replace(self, pods={})

    def health(self, pod: SeenPod, settings: PlanSettings) -> PodHealth:
        return assess_pod(pod.view, now=self.now, stability=settings.stability_window)
