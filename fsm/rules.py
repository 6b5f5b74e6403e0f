"""The planner's rules, declared: each one's name, what it does, and which triggers it may fire or facts it may
record. `modeladapter.fsm.planning` fires a trigger only under a rule that declares it (and raises otherwise),
so this list is what the planner does, and `docs/events.md` is generated from it.

They are listed in the order a reconcile applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from modeladapter.fsm.phases import PhaseTrigger, PlacementTrigger, Trigger

T, U = PhaseTrigger, PlacementTrigger


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    does: str
    fires: tuple[Trigger, ...] = ()
    records: tuple[str, ...] = ()
    """Event types the rule records directly (facts that are no edge of a machine)."""


OBSERVE_SPEC: Final = Rule(
    "observe_spec",
    "a generation of the spec not seen before is recorded, with the problem that makes it unusable if any",
    records=("SpecObserved", "SpecRejected"),
)
ADMIT: Final = Rule("admit", "a stream's first decision: the adapter is Pending", fires=(T.CREATED,))
RETIRE_GONE: Final = Rule(
    "retire_gone", "a placement whose pod was deleted goes with it (counts as unloaded)", fires=(U.POD_GONE,)
)
UNLOAD_UNSELECTED: Final = Rule(
    "unload_unselected", "a pod the selector no longer matches gives the adapter back", fires=(U.UNLOAD,)
)
LOSE_UNHEALTHY: Final = Rule(
    "lose_unhealthy",
    "a placement on a pod that is not healthy is lost at once (it leaves the instances)",
    fires=(U.POD_LOST,),
)
SETTLE_INTERRUPTED_LOAD: Final = Rule(
    "settle_interrupted_load",
    "a load a restart interrupted is settled by the engine's listing: loaded, or a retriable failure",
    fires=(U.LOAD_SUCCEEDED, U.LOAD_FAILED),
)
NOTICE_MISSING: Final = Rule(
    "notice_missing",
    "a loaded adapter its engine does not list (unloaded by another client, engine restarted, another artifact, unreachable) is lost",
    fires=(U.ADAPTER_MISSING,),
)
RETRY_WHEN_DUE: Final = Rule(
    "retry_when_due", "a placement in backoff whose retry time has come is tried again", fires=(U.RETRY_DUE,)
)
REPAIR_LOST: Final = Rule(
    "repair_lost", "a healthy pod that lost the adapter gets it back while a replica is missing", fires=(U.RELOAD,)
)
RECONSIDER_RESTED: Final = Rule(
    "reconsider_rested",
    "an exhausted pod that rested (or any, for a new spec) gets fresh attempts if needed, else lets go",
    fires=(U.RECONSIDER, U.UNLOAD),
)
PLACE_MISSING: Final = Rule(
    "place_missing",
    "missing replicas go to stable, healthy pods with room, chosen by the adapter's policy (a switch says so)",
    fires=(U.ASSIGN,),
)
TRIM_SURPLUS: Final = Rule(
    "trim_surplus",
    "replicas beyond the desired count are unloaded, the least serving and newest first",
    fires=(U.UNLOAD,),
)
RELEASE_LOST: Final = Rule(
    "release_lost", "a lost placement on a pod that is back but not needed gives the adapter back", fires=(U.UNLOAD,)
)
START_LOADS: Final = Rule("start_loads", "assigned placements on healthy pods start loading", fires=(U.START_LOAD,))
TRACK_ROLLOUT: Final = Rule(
    "track_rollout",
    "pods serving another artifact than the spec's start a rollout; it halts while the new artifact fails on a "
    "pod, resumes when that is over, and finishes when no instance serves an older one",
    records=("RolloutStarted", "RolloutHalted", "RolloutResumed", "RolloutFinished"),
)
RETIRE_REPLACED: Final = Rule(
    "retire_replaced",
    "during a surge, an instance of an older artifact retires once a new one serves in its stead",
    fires=(U.UNLOAD,),
    records=("InstanceUpdated",),
)
SURGE_UPDATE: Final = Rule(
    "surge_update",
    "with `replicas` set and a free pod, the new artifact is loaded on an extra pod before an old instance retires",
    fires=(U.ASSIGN,),
)
UPDATE_IN_PLACE: Final = Rule(
    "update_in_place",
    "without a surge, a pod serving an older artifact leaves the instances and reloads, at most "
    "`maxUnavailable` at once and never the last of several; none while the rollout is halted",
    fires=(U.RELOAD,),
)
RETIRE_EVERYTHING: Final = Rule(
    "retire_everything",
    "a deleted adapter is unloaded from every pod, within a deadline; a deleted pod counts as unloaded",
    fires=(U.POD_GONE, U.UNLOAD),
)
LOAD_OUTCOME: Final = Rule(
    "load_outcome",
    "a load call's outcome: verified loaded, or failed (retriable or not)",
    fires=(U.LOAD_SUCCEEDED, U.LOAD_FAILED),
)
UNLOAD_OUTCOME: Final = Rule(
    "unload_outcome",
    "an unload call's outcome: unloaded, failed (retried until the deadline), or the pod is gone",
    fires=(U.UNLOAD_SUCCEEDED, U.UNLOAD_FAILED, U.POD_GONE),
)
BIND_ENDPOINTS: Final = Rule(
    "bind_endpoints",
    "the addresses the Service's EndpointSlice now lists are recorded when they changed",
    records=("ServiceBound",),
)
RESTORE_OWNED: Final = Rule(
    "restore_owned",
    "a Service or EndpointSlice of the adapter's that someone else deleted or edited is recorded as put back",
    records=("OwnedObjectRestored",),
)
WALK_PHASE: Final = Rule(
    "walk_phase",
    "the phase follows the placements one phase-table edge at a time (`modeladapter.fsm.progress`)",
    fires=tuple(PhaseTrigger),
)
FINALIZE: Final = Rule(
    "finalize",
    "a deleted adapter with no placement left ends its stream (before its finalizer goes)",
    records=("Finalized",),
)

RULES: Final[tuple[Rule, ...]] = (
    OBSERVE_SPEC,
    ADMIT,
    RETIRE_GONE,
    UNLOAD_UNSELECTED,
    LOSE_UNHEALTHY,
    SETTLE_INTERRUPTED_LOAD,
    NOTICE_MISSING,
    TRACK_ROLLOUT,
    RETIRE_REPLACED,
    RETRY_WHEN_DUE,
    REPAIR_LOST,
    RECONSIDER_RESTED,
    SURGE_UPDATE,
    PLACE_MISSING,
    TRIM_SURPLUS,
    RELEASE_LOST,
    START_LOADS,
    UPDATE_IN_PLACE,
    RETIRE_EVERYTHING,
    LOAD_OUTCOME,
    UNLOAD_OUTCOME,
    BIND_ENDPOINTS,
    RESTORE_OWNED,
    WALK_PHASE,
    FINALIZE,
)
