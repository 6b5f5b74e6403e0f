"""Each adapter's story in the operator's log: one line for every event the operator records about it.

The controller hands `tell` to the journal (`Journal.on_appended`), the one path every event takes into the
event log, so a pass over a live object, an orphan's clean-up and a deletion are all told, each event once and
only after it was written. The message is the event's narration (`modeladapter.operator.audit.narration`),
the same English the sandbox prints and `modeladapter events` shows; the fields let a collector select:

    {"level": "WARNING", "logger": "modeladapter.operator.controller.story",
     "message": "load attempt 1 on qwen-0 failed (retriable, retry at 12:00:01.050): ...",
     "adapter": "qwen-code-lora", "namespace": "default", "uid": "...", "reconcile_id": "...",
     "event": "LoadFailed", "pod": "qwen-0", "reason": "LoadFailed", "attempt": 1}

`pod` and `attempt` are null on events about no pod, or with no attempt. `reason` is a CamelCase word: the
event type, except for a phase change (the condition's reason, e.g. `Scheduled`, `ModelAdapterAvailable`)
and a load attempt after the first on a pod (`Retrying`).

Levels: WARNING for what went wrong or was taken away (a failed load or unload, a pod given up on, lost or
switched from, a halted rollout, a rejected spec, the Failed phase, an object someone else changed), INFO for
the steps of a normal life (spec observed, pod selected, load started and succeeded, phase changes, rollout
steps, unloads, the end of the stream), DEBUG for the bookkeeping those lines already imply (each placement's
state change, the Service's endpoints, a phase decision that keeps the phase).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from modeladapter.fsm.events import (
    AdapterEvent,
    AdapterMissing,
    Finalized,
    InstanceUpdated,
    LoadFailed,
    LoadStarted,
    LoadSucceeded,
    OwnedObjectRestored,
    PhaseChanged,
    PlacementChanged,
    PlacementExhausted,
    PodLost,
    PodSelected,
    PodSwitched,
    RecordedEvent,
    RolloutFinished,
    RolloutHalted,
    RolloutResumed,
    RolloutStarted,
    ServiceBound,
    SpecObserved,
    SpecRejected,
    Unloaded,
    UnloadFailed,
    UnloadStarted,
)
from modeladapter.fsm.phases import Phase
from modeladapter.operator.audit.narration import narrate

log = logging.getLogger(__name__)

RETRYING: Final = "Retrying"


@dataclass(frozen=True, slots=True)
class StoryLine:
    """How one event is told: at which level, with which reason, about which pod and attempt."""

    level: int
    reason: str
    pod: str | None = None
    attempt: int | None = None


def story_line(payload: AdapterEvent) -> StoryLine:
    """The level and fields of the line that tells `payload`."""
    info, warning, debug = logging.INFO, logging.WARNING, logging.DEBUG
    kind = payload.type
    match payload:
        case PhaseChanged() if payload.from_phase is payload.to_phase:
            return StoryLine(debug, payload.reason)
        case PhaseChanged():
            return StoryLine(warning if payload.to_phase is Phase.FAILED else info, payload.reason)
        case LoadStarted():
            return StoryLine(info, RETRYING if payload.attempt > 1 else kind, payload.pod, payload.attempt)
        case LoadSucceeded():
            return StoryLine(info, kind, payload.pod, payload.attempt)
        case LoadFailed():
            return StoryLine(warning, kind, payload.pod, payload.attempt)
        case PlacementExhausted():
            return StoryLine(warning, kind, payload.pod, payload.attempts)
        case PodSwitched():
            return StoryLine(warning, kind, payload.to_pod)
        case Unloaded():
            return StoryLine(warning if payload.outcome == "abandoned" else info, kind, payload.pod)
        case AdapterMissing() | PodLost() | UnloadFailed() | RolloutHalted():
            return StoryLine(warning, kind, payload.pod)
        case PodSelected() | UnloadStarted() | InstanceUpdated() | RolloutResumed():
            return StoryLine(info, kind, payload.pod)
        case SpecRejected() | OwnedObjectRestored():
            return StoryLine(warning, kind)
        case SpecObserved() | RolloutStarted() | RolloutFinished() | Finalized():
            return StoryLine(info, kind)
        case PlacementChanged():
            return StoryLine(debug, kind, payload.pod)
        case ServiceBound():
            return StoryLine(debug, kind)
    raise AssertionError(f"no story line for {type(payload).__name__}")  # pragma: no cover - exhaustive


def tell(recorded: Sequence[RecordedEvent]) -> None:
    """Log one line for each event just written to the event log (`Journal.on_appended`)."""
    for event in recorded:
        told = story_line(event.payload)
        if not log.isEnabledFor(told.level):
            continue
        fields: dict[str, Any] = {
            # Explicit, not from the log context: an orphan's clean-up runs with no object to name it.
            "adapter": event.name,
            "namespace": event.namespace,
            "uid": event.stream_id,
            "reconcile_id": event.reconcile_id,
            "event": event.payload.type,
            "pod": told.pod,
            "reason": told.reason,
            "attempt": told.attempt,
        }
        if isinstance(event.payload, PodSwitched):
            fields["from_pod"] = event.payload.from_pod
        log.log(told.level, "%s", narrate(event.payload), extra=fields)
