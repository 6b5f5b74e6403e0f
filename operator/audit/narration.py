"""Events told in one line of English each: what the sandbox prints live and what `events` shows in a table.

`narrate(payload)` covers every event type (a test walks `EVENT_TYPES`), and says what an on-call engineer
asks first: which pod, which attempt, what error, when the next try is. `line(event)` prefixes it with the
time and the adapter: `21:04:05.123  default/qwen-code-lora  phase Loading -> Bound (load_verified: ...)`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

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

NO_PHASE: Final = "-"


def clock(moment: datetime) -> str:
    """Wall-clock time to the millisecond, in the moment's own zone (the log stores UTC)."""
    return f"{moment:%H:%M:%S.%f}"[:-3]


def narrate(payload: AdapterEvent) -> str:
    match payload:
        case SpecObserved():
            replicas = "all candidates" if payload.replicas is None else f"{payload.replicas} replica(s)"
            return (
                f"spec generation {payload.generation}: {payload.artifact_url} on {replicas} of "
                f"{payload.pod_selector or 'every pod'} ({payload.scheduler_name})"
            )
        case SpecRejected():
            # The message already names the field (`<field>: <rule> (got ...)`).
            detail = (
                payload.message if payload.message.startswith(payload.field) else f"{payload.field}: {payload.message}"
            )
            return f"spec generation {payload.generation} rejected: {detail}"
        case PodSelected():
            why = payload.reason.removeprefix(f"{payload.policy}: ")
            return f"pod {payload.pod} selected by {payload.policy}" + (f": {why}" if why else "")
        case PodSwitched():
            return f"switched pod {payload.from_pod} -> {payload.to_pod} ({payload.reason})"
        case LoadStarted():
            update = f" (update from {payload.replacing})" if payload.replacing else ""
            return f"load attempt {payload.attempt} on {payload.pod}: {payload.artifact_url}{update}"
        case LoadSucceeded():
            return f"load attempt {payload.attempt} on {payload.pod} succeeded in {payload.duration_ms:.0f} ms"
        case LoadFailed():
            kind = "retriable" if payload.retriable else "not retriable"
            retry = f", retry at {clock(payload.retry_at)}" if payload.retry_at else ""
            return f"load attempt {payload.attempt} on {payload.pod} failed ({kind}{retry}): {payload.error}"
        case PlacementExhausted():
            return (
                f"gave up on pod {payload.pod} after {payload.attempts} attempt(s) ({payload.cause}); "
                f"may reconsider it at {clock(payload.reconsider_at)}"
            )
        case AdapterMissing():
            return f"pod {payload.pod} no longer serves the adapter: {payload.reason}"
        case PodLost():
            return f"pod {payload.pod} lost: {payload.reason}"
        case UnloadStarted():
            deadline = f" (give up at {clock(payload.deadline)})" if payload.deadline else ""
            return f"unloading from {payload.pod}{deadline}"
        case Unloaded():
            return f"unloaded from {payload.pod}: {payload.outcome}"
        case UnloadFailed():
            then = (
                "abandoned"
                if payload.abandoned
                else (f"retry at {clock(payload.retry_at)}" if payload.retry_at else "will retry")
            )
            return f"unload from {payload.pod} failed ({then}): {payload.error}"
        case RolloutStarted():
            back = "rollback" if payload.rollback else "rollout"
            return (
                f"{back} to {payload.to_artifact} from {', '.join(payload.from_artifacts)} on "
                f"{payload.instances} instance(s) (maxUnavailable {payload.max_unavailable}, "
                f"maxSurge {payload.max_surge})"
            )
        case InstanceUpdated() if payload.replaced_pod is not None:
            return (
                f"pod {payload.pod} serves {payload.artifact}; pod {payload.replaced_pod}'s instance of "
                f"{payload.previous} retires"
            )
        case InstanceUpdated():
            return f"pod {payload.pod} updated in place: {payload.previous} -> {payload.artifact}"
        case RolloutHalted():
            return (
                f"rollout halted on pod {payload.pod}; {payload.serving_old} instance(s) keep serving the older "
                f"artifact: {payload.error}"
            )
        case RolloutResumed():
            if payload.left:
                return f"rollout resumed: pod {payload.pod}, which held it back, no longer holds the adapter; the next pod tries again"
            return f"rollout resumed: pod {payload.pod} no longer holds it back"
        case RolloutFinished():
            how = "rolled back to" if payload.rolled_back else "finished:"
            return f"rollout {how} {payload.artifact} on {payload.instances} instance(s)"
        case ServiceBound():
            endpoints = ", ".join(payload.endpoints) or "no endpoints"
            return f"service {payload.service} -> {endpoints}"
        case OwnedObjectRestored():
            return f"{payload.kind} {payload.name} was {payload.change} by someone else; put back"
        case Finalized():
            return "finalized: every pod unloaded, finalizer removed"
        case PhaseChanged():
            source = payload.from_phase or NO_PHASE
            detail = payload.message or payload.reason
            return f"phase {source} -> {payload.to_phase} ({payload.trigger}: {detail})"
        case PlacementChanged():
            source = payload.from_state or NO_PHASE
            return f"pod {payload.pod}: {source} -> {payload.to_state} ({payload.trigger})"
    raise AssertionError(f"no narration for {type(payload).__name__}")  # pragma: no cover - exhaustive


def line(event: RecordedEvent, *, with_adapter: bool = True) -> str:
    """`HH:MM:SS.mmm  namespace/name  <narration>`; the adapter is left out when the reader already knows it."""
    who = f"{event.namespace}/{event.name}  " if with_adapter else ""
    return f"{clock(event.recorded_at)}  {who}{narrate(event.payload)}"
