"""The vocabulary of the two state machines: states and the triggers that move them.

A ModelAdapter has one **phase** (what `kubectl get modeladapters` shows) and one **placement** per pod
it was scheduled onto. Each has its own machine (`modeladapter.fsm.table`). Triggers are observations or
verbs in snake_case; they are what the operator detects in the cluster and the engines, and what the
event log records as the cause of every decision.

`NEW` is the origin of both machines: a stream with no phase decision yet, a pod with no placement yet.
It is a state of the machines only, never a value of `status.phase`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

NEW: Final = "New"


class Phase(StrEnum):
    """`status.phase` of a ModelAdapter (the seed documentation's sequence, plus Failed and Terminating)."""

    PENDING = "Pending"
    SCHEDULED = "Scheduled"
    LOADING = "Loading"
    BOUND = "Bound"
    RUNNING = "Running"
    FAILED = "Failed"
    TERMINATING = "Terminating"


class PlacementState(StrEnum):
    """Where the adapter stands on one pod."""

    ASSIGNED = "Assigned"
    LOADING = "Loading"
    BACKOFF = "Backoff"
    LOADED = "Loaded"
    EXHAUSTED = "Exhausted"
    LOST = "Lost"
    UNLOADING = "Unloading"
    UNLOADED = "Unloaded"


class PhaseTrigger(StrEnum):
    """Situations of the whole adapter, detected from the spec, the pods and the placements."""

    CREATED = "created"
    SPEC_INVALID = "spec_invalid"
    SPEC_CHANGED = "spec_changed"
    PODS_UNAVAILABLE = "pods_unavailable"
    PODS_SELECTED = "pods_selected"
    PODS_CHANGED = "pods_changed"
    LOAD_STARTED = "load_started"
    LOAD_VERIFIED = "load_verified"
    LOADING_FAILED = "loading_failed"
    SERVICE_BOUND = "service_bound"
    SERVICE_LOST = "service_lost"
    RETRY_DUE = "retry_due"
    DELETION_REQUESTED = "deletion_requested"


class PlacementTrigger(StrEnum):
    """What happens to the adapter on one pod: the operator's actions and their outcomes."""

    ASSIGN = "assign"
    START_LOAD = "start_load"
    LOAD_SUCCEEDED = "load_succeeded"
    LOAD_FAILED = "load_failed"
    RETRY_DUE = "retry_due"
    RECONSIDER = "reconsider"
    ADAPTER_MISSING = "adapter_missing"
    POD_LOST = "pod_lost"
    POD_GONE = "pod_gone"
    RELOAD = "reload"
    UNLOAD = "unload"
    UNLOAD_SUCCEEDED = "unload_succeeded"
    UNLOAD_FAILED = "unload_failed"


Trigger = PhaseTrigger | PlacementTrigger

# Placements in these states hold (or are about to hold) the adapter on their pod: they count towards the
# pod's load and the adapter's selected pods.
ACTIVE_PLACEMENT_STATES: Final = frozenset(
    {PlacementState.ASSIGNED, PlacementState.LOADING, PlacementState.BACKOFF, PlacementState.LOADED}
)
