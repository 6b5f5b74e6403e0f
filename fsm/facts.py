"""What a decision is made from: the folded state, the trigger's facts, and the events it emits.

`Facts` is everything the caller observed for one trigger, including the time: the machines never read a
clock. `Decision` is the short-lived model that `transitions` drives through one trigger; guards read it,
callbacks append to its `emitted` list, and nothing else happens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from modeladapter.fsm.backoff import DEFAULT_BACKOFF, BackoffPolicy
from modeladapter.fsm.events import AdapterEvent
from modeladapter.fsm.state import AdapterState, Placement


@dataclass(frozen=True, slots=True, kw_only=True)
class Facts:
    """The observations behind one trigger."""

    now: datetime
    """When the trigger was observed; every time in the emitted events derives from it."""
    pod: str | None = None
    """The pod whose placement the trigger is about (placement triggers only)."""
    reason: str = ""
    """Phase triggers: the condition reason (CamelCase). Placement triggers: why the pod was lost or chosen."""
    message: str = ""
    """Phase triggers: the condition message."""
    error: str = ""
    """The engine's or the network's error text, for failed loads and unloads."""
    retriable: bool = False
    """Whether that error is worth retrying on the same pod (`modeladapter.fsm.retriable`)."""
    duration_ms: float = 0.0
    """How long a successful load took."""
    artifact_url: str = ""
    """The artifact being loaded; defaults to the observed spec's."""
    policy: str = ""
    """The scheduling policy that chose the pod."""
    replaces: str | None = None
    replacing: str | None = None
    """A load that updates the pod from this artifact (a surge's first load names the one it will replace)."""
    """The pod this assignment switches away from."""
    unload_deadline: datetime | None = None
    """When unloading starts: after this instant a failing unload is abandoned (recorded in the log)."""
    backoff: BackoffPolicy = DEFAULT_BACKOFF


@dataclass
class Decision:
    """The model `transitions` moves through one trigger. `state` is managed by the machine.

    Not slotted: `transitions` binds `trigger` on the instance.
    """

    adapter: AdapterState
    facts: Facts
    placement: Placement | None
    emitted: list[AdapterEvent] = field(default_factory=list)
    state: str = ""

    def trigger(self, trigger_name: str) -> bool:
        """Replaced by `transitions` when the model joins a machine (`model_override=True`)."""
        raise RuntimeError("Decision.trigger called before the model joined a machine")

    @property
    def pod(self) -> str:
        if self.facts.pod is None:
            raise ValueError("a placement trigger needs facts.pod")
        return self.facts.pod

    @property
    def attempts(self) -> int:
        return self.placement.attempts if self.placement is not None else 0

    @property
    def artifact_url(self) -> str:
        if self.facts.artifact_url:
            return self.facts.artifact_url
        return self.adapter.spec.artifact_url if self.adapter.spec is not None else ""
