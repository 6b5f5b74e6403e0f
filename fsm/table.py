"""The two transition tables: every edge of the phase machine and of the placement machine, one per line.

Read them top to bottom, grouped by source state. Where one trigger has several edges from the same source,
they are tried in order and the first whose guard passes wins; the group always ends with an unguarded
edge. A (state, trigger) pair that appears nowhere is rejected (`modeladapter.fsm.machine.TransitionRejected`).

Reflexive edges (`Failed -> Failed`, `Unloading -> Unloading`) are accepted triggers that keep the state but
still record a decision, because the reason changed (a new invalid generation, one more failed unload).

The phase machine emits only `PhaseChanged`; its triggers are situations of the whole adapter, and the
facts behind them are recorded by whoever observed them. The placement machine's edges name the facts
they record (`emit`), e.g. `LoadFailed` with the backoff's retry time.

A pod that is *lost* (not Ready, terminating, the engine lost the adapter) may come back; a pod that is
*gone* (deleted) takes the adapter with it, which counts as unloaded. Only a placement that holds, or is about
to hold, the adapter can be lost: an `Exhausted` one holds nothing and keeps resting. Retiring any placement that may hold
the adapter goes through a real unload call (`Unloading`): a load that timed out may still have landed, and a
deleted ModelAdapter must leave no copy on any live pod. Only an `Assigned` placement, never tried, is
dropped without a call.

`docs/state-machines.md` is rendered from these tables (`python -m modeladapter.fsm.diagram`); a test fails
when it drifts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from modeladapter.fsm import emitters as emit
from modeladapter.fsm import guards as guard
from modeladapter.fsm.emitters import Emitter
from modeladapter.fsm.guards import Guard
from modeladapter.fsm.phases import NEW, Phase, PhaseTrigger, PlacementState, PlacementTrigger


@dataclass(frozen=True, slots=True)
class Edge:
    trigger: PhaseTrigger | PlacementTrigger
    source: str
    dest: str
    guard: Guard | None = None
    emit: Emitter | None = None


P, T = Phase, PhaseTrigger

PHASE_TABLE: Final[tuple[Edge, ...]] = (
    # trigger                 source          dest
    Edge(T.CREATED, NEW, P.PENDING),  # first reconcile of a new ModelAdapter
    Edge(T.DELETION_REQUESTED, NEW, P.TERMINATING),  # deleted before it was ever reconciled
    Edge(T.SPEC_INVALID, P.PENDING, P.FAILED),  # the spec cannot be acted on
    Edge(T.PODS_UNAVAILABLE, P.PENDING, P.PENDING),  # still waiting; the reason may have changed
    Edge(T.PODS_SELECTED, P.PENDING, P.SCHEDULED),  # stable healthy pods chosen by the policy
    Edge(T.DELETION_REQUESTED, P.PENDING, P.TERMINATING),
    Edge(T.SPEC_INVALID, P.SCHEDULED, P.FAILED),
    Edge(T.PODS_UNAVAILABLE, P.SCHEDULED, P.PENDING),  # the chosen pods went away before loading
    Edge(T.LOAD_STARTED, P.SCHEDULED, P.LOADING),  # first load call in flight
    Edge(T.DELETION_REQUESTED, P.SCHEDULED, P.TERMINATING),
    Edge(T.SPEC_INVALID, P.LOADING, P.FAILED),
    Edge(T.PODS_UNAVAILABLE, P.LOADING, P.PENDING),  # every pod lost, none to replace them
    Edge(T.PODS_SELECTED, P.LOADING, P.SCHEDULED),  # pod switch: only fresh assignments remain
    Edge(T.LOAD_VERIFIED, P.LOADING, P.BOUND),  # the engines list the adapter
    Edge(T.LOADING_FAILED, P.LOADING, P.FAILED),  # no pod can take it: all exhausted
    Edge(T.DELETION_REQUESTED, P.LOADING, P.TERMINATING),
    Edge(T.SPEC_INVALID, P.BOUND, P.FAILED),
    Edge(T.PODS_UNAVAILABLE, P.BOUND, P.PENDING),
    Edge(T.PODS_SELECTED, P.BOUND, P.SCHEDULED),  # every instance lost, new pods chosen
    Edge(T.LOAD_STARTED, P.BOUND, P.LOADING),  # every instance lost or stale, reloading
    Edge(T.SERVICE_BOUND, P.BOUND, P.RUNNING),  # Service and EndpointSlice list the instances
    Edge(T.DELETION_REQUESTED, P.BOUND, P.TERMINATING),
    Edge(T.SPEC_INVALID, P.RUNNING, P.FAILED),
    Edge(T.PODS_UNAVAILABLE, P.RUNNING, P.PENDING),
    Edge(T.PODS_SELECTED, P.RUNNING, P.SCHEDULED),
    Edge(T.LOAD_STARTED, P.RUNNING, P.LOADING),  # e.g. artifactURL changed: reload everywhere
    Edge(T.SERVICE_LOST, P.RUNNING, P.BOUND),  # Service or EndpointSlice missing or stale
    Edge(T.DELETION_REQUESTED, P.RUNNING, P.TERMINATING),
    Edge(T.SPEC_INVALID, P.FAILED, P.FAILED),  # a new generation is still invalid
    Edge(T.SPEC_CHANGED, P.FAILED, P.PENDING),  # a new generation gets a fresh start
    Edge(T.PODS_CHANGED, P.FAILED, P.PENDING),  # new candidate pods appeared
    Edge(T.RETRY_DUE, P.FAILED, P.PENDING),  # exhausted pods rested long enough
    Edge(T.DELETION_REQUESTED, P.FAILED, P.TERMINATING),
)

S, U = PlacementState, PlacementTrigger

PLACEMENT_TABLE: Final[tuple[Edge, ...]] = (
    # trigger             source        dest          guard                          emit
    Edge(U.ASSIGN, NEW, S.ASSIGNED, emit=emit.pod_selected),
    Edge(U.START_LOAD, S.ASSIGNED, S.LOADING, emit=emit.load_started),
    Edge(U.POD_LOST, S.ASSIGNED, S.LOST, emit=emit.pod_lost),
    Edge(U.POD_GONE, S.ASSIGNED, S.UNLOADED, emit=emit.pod_gone),
    Edge(U.UNLOAD, S.ASSIGNED, S.UNLOADED, emit=emit.nothing_to_unload),
    Edge(U.LOAD_SUCCEEDED, S.LOADING, S.LOADED, emit=emit.load_succeeded),
    Edge(U.LOAD_FAILED, S.LOADING, S.BACKOFF, guard.retriable, emit.load_failed_will_retry),
    Edge(U.LOAD_FAILED, S.LOADING, S.EXHAUSTED, emit=emit.load_failed_for_good),
    Edge(U.POD_LOST, S.LOADING, S.LOST, emit=emit.pod_lost),
    Edge(U.POD_GONE, S.LOADING, S.UNLOADED, emit=emit.pod_gone),
    Edge(U.UNLOAD, S.LOADING, S.UNLOADING, emit=emit.unload_started),
    Edge(U.RETRY_DUE, S.BACKOFF, S.LOADING, guard.attempts_left, emit.load_started),
    Edge(U.RETRY_DUE, S.BACKOFF, S.EXHAUSTED, emit=emit.retries_exhausted),
    Edge(U.POD_LOST, S.BACKOFF, S.LOST, emit=emit.pod_lost),
    Edge(U.POD_GONE, S.BACKOFF, S.UNLOADED, emit=emit.pod_gone),
    Edge(U.UNLOAD, S.BACKOFF, S.UNLOADING, emit=emit.unload_started),
    Edge(U.ADAPTER_MISSING, S.LOADED, S.LOST, emit=emit.adapter_missing),
    Edge(U.POD_LOST, S.LOADED, S.LOST, emit=emit.pod_lost),
    Edge(U.POD_GONE, S.LOADED, S.UNLOADED, emit=emit.pod_gone),
    Edge(U.RELOAD, S.LOADED, S.LOADING, emit=emit.load_started),
    Edge(U.UNLOAD, S.LOADED, S.UNLOADING, emit=emit.unload_started),
    Edge(U.RECONSIDER, S.EXHAUSTED, S.ASSIGNED),  # rested: fresh attempts
    Edge(U.POD_GONE, S.EXHAUSTED, S.UNLOADED, emit=emit.pod_gone),
    Edge(U.UNLOAD, S.EXHAUSTED, S.UNLOADING, emit=emit.unload_started),
    Edge(U.RELOAD, S.LOST, S.LOADING, emit=emit.load_started),
    Edge(U.ASSIGN, S.LOST, S.ASSIGNED, emit=emit.pod_selected),
    Edge(U.POD_GONE, S.LOST, S.UNLOADED, emit=emit.pod_gone),
    Edge(U.UNLOAD, S.LOST, S.UNLOADING, emit=emit.unload_started),
    Edge(U.UNLOAD_SUCCEEDED, S.UNLOADING, S.UNLOADED, emit=emit.unloaded),
    Edge(U.UNLOAD_FAILED, S.UNLOADING, S.UNLOADED, guard.unload_deadline_passed, emit.unload_abandoned),
    Edge(U.UNLOAD_FAILED, S.UNLOADING, S.UNLOADING, emit=emit.unload_failed),
    Edge(U.POD_GONE, S.UNLOADING, S.UNLOADED, emit=emit.pod_gone),
)

PHASE_STATES: Final[tuple[str, ...]] = (NEW, *Phase)
PLACEMENT_STATES: Final[tuple[str, ...]] = (NEW, *PlacementState)


def table_of(trigger: PhaseTrigger | PlacementTrigger) -> tuple[Edge, ...]:
    """The table a trigger belongs to (both machines have a `retry_due`: the trigger's type tells them apart)."""
    return PHASE_TABLE if isinstance(trigger, PhaseTrigger) else PLACEMENT_TABLE


def sources(trigger: PhaseTrigger | PlacementTrigger) -> frozenset[str]:
    """The states that accept `trigger` (guards aside): what a planner rule asks before it fires it."""
    return frozenset(edge.source for edge in table_of(trigger) if edge.trigger == trigger)


def accepts(state: str, trigger: PhaseTrigger | PlacementTrigger) -> bool:
    """Whether a machine in `state` has any edge for `trigger` (guards aside)."""
    return state in sources(trigger)


def lands(phase: Phase | None, trigger: PhaseTrigger) -> Phase | None:
    """Where the phase edge of `trigger` from `phase` (None: `New`) lands; None if the table has no such edge.

    The phase table has no guards, so one (phase, trigger) has at most one edge."""
    source = NEW if phase is None else phase.value
    for edge in PHASE_TABLE:
        if edge.trigger is trigger and edge.source == source:
            return Phase(edge.dest)
    return None


# The condition reason and message a phase decision records when the caller gives none.
DEFAULT_PHASE_REASONS: Final[dict[PhaseTrigger, tuple[str, str]]] = {
    T.CREATED: ("ModelAdapterPending", "Starting reconciliation"),
    T.SPEC_INVALID: ("InvalidSpec", "the spec is invalid"),
    T.SPEC_CHANGED: ("SpecChanged", "a new generation of the spec was observed"),
    T.PODS_UNAVAILABLE: ("NoCandidatePods", "no healthy pod matches the selector"),
    T.PODS_SELECTED: ("Scheduled", "pods selected"),
    T.PODS_CHANGED: ("PodsChanged", "the candidate pods changed"),
    T.LOAD_STARTED: ("Loading", "loading the adapter"),
    T.LOAD_VERIFIED: ("Loaded", "the engines list the adapter"),
    T.LOADING_FAILED: ("ModelAdapterLoadingError", "loading failed on every pod"),
    T.SERVICE_BOUND: ("ModelAdapterAvailable", "the adapter is ready"),
    T.SERVICE_LOST: ("ServiceMissing", "the Service or EndpointSlice is missing or stale"),
    T.RETRY_DUE: ("RetryDue", "retrying after the cool-down"),
    T.DELETION_REQUESTED: ("Terminating", "unloading from every pod"),
}
