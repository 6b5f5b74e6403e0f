"""Which Kubernetes Events one reconcile's log entries deserve: what a person reading `kubectl describe` wants
to see — `Scheduled`, `Loading`, `Loaded`, `LoadFailed`, `MaxRetriesExceeded`, `PodSwitched`, `PodLost`,
`Running`, `Unloaded`, `Failed`, and an update's `RollingUpdate`, `UpdateFailed`, `UpdateResumed`, `UpdateComplete`
or `RolledBack` — with the seed documentation's wording where it has one. Pure; the
`EventRecorder` (`modeladapter.operator.kube.events`) writes them.
"""

from __future__ import annotations

from collections.abc import Sequence

from modeladapter.fsm.events import (
    AdapterEvent,
    AdapterMissing,
    LoadFailed,
    LoadStarted,
    LoadSucceeded,
    OwnedObjectRestored,
    PhaseChanged,
    PlacementExhausted,
    PodLost,
    PodSelected,
    PodSwitched,
    RolloutFinished,
    RolloutHalted,
    RolloutResumed,
    RolloutStarted,
    Unloaded,
    UnloadFailed,
)
from modeladapter.fsm.phases import Phase
from modeladapter.fsm.state import AdapterState
from modeladapter.operator.api.conditions import format_time
from modeladapter.operator.kube.events import Notice


def events_for(payloads: Sequence[AdapterEvent], after: AdapterState, *, namespace: str, name: str) -> list[Notice]:
    """The Events one reconcile's log entries deserve (`after` is the state they led to)."""
    notices: list[Notice] = []
    selected = [p.pod for p in payloads if isinstance(p, PodSelected)]
    if selected:
        notices.append(
            Notice(
                "Normal",
                "Scheduled",
                f"ModelAdapter has selected {len(selected)} pods for scheduling: [{' '.join(selected)}]",
            )
        )
    for payload in payloads:
        match payload:
            case LoadStarted():
                notices.append(
                    Notice("Normal", "Loading", f"Loading adapter on pod {payload.pod} (attempt {payload.attempt})")
                )
            case LoadSucceeded():
                notices.append(Notice("Normal", "Loaded", f"Successfully loaded adapter on pod {payload.pod}"))
            case LoadFailed():
                then = f"; retrying at {format_time(payload.retry_at)}" if payload.retry_at else ""
                notices.append(
                    Notice(
                        "Warning",
                        "LoadFailed",
                        f"Failed to load adapter on pod {payload.pod} (attempt {payload.attempt}): {payload.error}{then}",
                    )
                )
            case PlacementExhausted(cause="max-retries"):
                placement = after.placement(payload.pod)
                error = placement.last_error if placement is not None else None
                notices.append(
                    Notice(
                        "Warning",
                        "MaxRetriesExceeded",
                        f"Max retries exceeded for pod {payload.pod}: {error or 'unknown error'}",
                    )
                )
            case PodSwitched():
                notices.append(
                    Notice(
                        "Normal",
                        "PodSwitched",
                        f"Switched from pod {payload.from_pod} to pod {payload.to_pod}: {payload.reason}",
                    )
                )
            case PodLost():
                notices.append(Notice("Warning", "PodLost", f"Pod {payload.pod} lost: {payload.reason}"))
            case AdapterMissing():
                notices.append(
                    Notice("Warning", "PodLost", f"Adapter no longer served by pod {payload.pod}: {payload.reason}")
                )
            case Unloaded(outcome="unloaded"):
                notices.append(Notice("Normal", "Unloaded", f"Unloaded adapter from pod {payload.pod}"))
            case UnloadFailed(abandoned=True):
                notices.append(
                    Notice(
                        "Warning",
                        "UnloadAbandoned",
                        f"Gave up unloading {namespace}/{name} from pod {payload.pod} at its deadline; its engine "
                        f"may still serve it: {payload.error}",
                    )
                )
            case RolloutStarted():
                old = ", ".join(payload.from_artifacts)
                doing = "Rolling back" if payload.rollback else "Updating"
                notices.append(
                    Notice(
                        "Normal",
                        "RollingUpdate",
                        f"{doing} {payload.instances} instances from {old} to {payload.to_artifact}",
                    )
                )
            case RolloutHalted():
                notices.append(
                    Notice(
                        "Warning",
                        "UpdateFailed",
                        f"The new artifact failed on pod {payload.pod}: {payload.error}; the update is halted and "
                        f"{payload.serving_old} instances keep serving the older artifact",
                    )
                )
            case RolloutResumed():
                why = (
                    "no longer holds the adapter; the next pod tries the new artifact"
                    if payload.left
                    else "no longer holds the update back"
                )
                notices.append(Notice("Normal", "UpdateResumed", f"Pod {payload.pod} {why}"))
            case RolloutFinished():
                reason, done = ("RolledBack", "Rolled back") if payload.rolled_back else ("UpdateComplete", "Updated")
                notices.append(
                    Notice("Normal", reason, f"{done}: {payload.instances} instances serve {payload.artifact}")
                )
            case OwnedObjectRestored():
                notices.append(
                    Notice(
                        "Warning",
                        "OwnedObjectRestored",
                        f"{payload.kind} {namespace}/{payload.name} was {payload.change} by someone else; "
                        "the operator put it back (it is owned by the ModelAdapter)",
                    )
                )
            case PhaseChanged(to_phase=Phase.RUNNING) if payload.from_phase is not Phase.RUNNING:
                notices.append(Notice("Normal", "Running", f"ModelAdapter {namespace}/{name} is ready"))
            case PhaseChanged(to_phase=Phase.FAILED):
                notices.append(Notice("Warning", "Failed", payload.message))
            case _:
                pass
    return notices
