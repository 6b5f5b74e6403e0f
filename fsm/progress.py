"""Where an adapter's phase should be, and the phase-table edges that take it there. Pure.

`target(...)` reads the placements (and whether the Service is in place) and says which phase the adapter is
in now, with the condition's reason and message. `walk(state, target)` follows the phase table towards it one
edge at a time, so the history always shows the documented sequence `Pending -> Scheduled -> Loading -> Bound
-> Running`, even when one reconcile gets all the way; each edge it passes through gets the words of that
phase, the last one the target's.

The path is derived from `PHASE_TABLE` (a breadth-first search over its edges, in table order), never written
down a second time. Two kinds of edges are taken only when the caller names them: the ones into `Failed`
(`spec_invalid` from anywhere, `loading_failed` from `Loading`: the target's `failure`) and the ones out of it
(`spec_changed`, `pods_changed`, `retry_due`: the target's `leaving`). Both sets are read off the table too.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

from modeladapter.fsm.phases import NEW, Phase, PhaseTrigger, PlacementState
from modeladapter.fsm.state import AdapterState
from modeladapter.fsm.table import PHASE_TABLE, lands
from modeladapter.fsm.wording import (
    loaded_message,
    loading_failed_message,
    loading_message,
    ready_message,
    scheduled_message,
)

P, T, S = Phase, PhaseTrigger, PlacementState


def _all_edges_of(trigger: PhaseTrigger) -> list[tuple[str, str]]:
    return [(edge.source, edge.dest) for edge in PHASE_TABLE if edge.trigger is trigger]


ENTERING_FAILED: Final = frozenset(
    t for t in PhaseTrigger if _all_edges_of(t) and all(dest == P.FAILED for _, dest in _all_edges_of(t))
)
"""Triggers whose every edge lands in `Failed`: a walk takes one only as the target's `failure`."""

LEAVING_FAILED: Final = frozenset(
    t
    for t in PhaseTrigger
    if _all_edges_of(t) and all(src == P.FAILED and dest != P.FAILED for src, dest in _all_edges_of(t))
)
"""Triggers whose every edge leaves `Failed`: a walk takes one only as the target's `leaving`."""

_CHOSEN_BY_THE_CALLER: Final = ENTERING_FAILED | LEAVING_FAILED


@dataclass(frozen=True, slots=True)
class Blocked:
    """Why no pod could be given the adapter: a condition reason and message."""

    reason: str
    message: str

    @property
    def waiting(self) -> bool:
        """Pods will be there soon (stability window) or free up (capacity): not a failure of the adapter."""
        return self.reason in ("WaitingForStablePods", "InsufficientCapacity")


NO_CANDIDATES: Final = Blocked("NoCandidatePods", "no healthy pod matches the selector")


@dataclass(frozen=True, slots=True)
class Target:
    """The phase an adapter should be in, with its condition words, and how `Failed` is entered or left."""

    phase: Phase
    reason: str
    message: str
    failure: PhaseTrigger = T.LOADING_FAILED
    """How a walk enters `Failed`: `loading_failed` (from Loading) or `spec_invalid` (from anywhere)."""
    leaving: PhaseTrigger = T.RETRY_DUE
    """Why a `Failed` adapter starts over: `spec_changed`, `pods_changed` or `retry_due`."""


@dataclass(frozen=True, slots=True)
class PhaseStep:
    """One phase edge of a walk: the trigger, and the condition reason and message it records."""

    trigger: PhaseTrigger
    reason: str
    message: str


class NoPath(ValueError):
    """The phase table has no way from one phase to another (only `Terminating` is a dead end)."""


def target(
    state: AdapterState,
    *,
    namespace: str,
    name: str,
    service_ready: bool | None,
    blocked: Blocked | None,
    leaving: PhaseTrigger = T.RETRY_DUE,
) -> Target:
    """Where the placements say the adapter stands (`service_ready` None: the Service was not checked yet)."""
    if state.instances:
        if service_ready is None and state.phase is P.RUNNING:
            service_ready = True  # decided after the Service is checked, at the end of the pass
        if service_ready:
            return Target(P.RUNNING, "ModelAdapterAvailable", ready_message(namespace, name), leaving=leaving)
        return Target(P.BOUND, "Loaded", loaded_message(state), leaving=leaving)
    in_flight = [p for p in state.placements if p.state in (S.LOADING, S.BACKOFF)]
    if in_flight:
        return Target(P.LOADING, "Loading", loading_message(in_flight), leaving=leaving)
    assigned = [p.pod for p in state.placements if p.state is S.ASSIGNED]
    if assigned:
        return Target(P.SCHEDULED, "Scheduled", scheduled_message(namespace, name, assigned), leaving=leaving)
    exhausted = [p for p in state.placements if p.state is S.EXHAUSTED]
    if exhausted and not (blocked is not None and blocked.waiting):
        return Target(P.FAILED, "ModelAdapterLoadingError", loading_failed_message(exhausted), leaving=leaving)
    why = blocked or NO_CANDIDATES
    return Target(P.PENDING, why.reason, why.message, leaving=leaving)


def path(
    current: Phase | None,
    to: Phase,
    *,
    failure: PhaseTrigger = T.LOADING_FAILED,
    leaving: PhaseTrigger = T.RETRY_DUE,
) -> tuple[PhaseTrigger, ...]:
    """The triggers of the shortest way through the phase table from `current` (None: New) to `to`.

    Empty when already there. Raises `NoPath` if there is none (out of `Terminating`)."""
    start = NEW if current is None else current.value
    allowed = {t for t in PhaseTrigger if t not in _CHOSEN_BY_THE_CALLER} | {failure, leaving}
    came_from: dict[str, tuple[str, PhaseTrigger] | None] = {start: None}
    frontier = deque([start])
    while frontier:
        here = frontier.popleft()
        if here == to.value:
            steps: list[PhaseTrigger] = []
            while (previous := came_from[here]) is not None:
                here, trigger = previous
                steps.append(trigger)
            return tuple(reversed(steps))
        for edge in PHASE_TABLE:
            if edge.source == here and edge.trigger in allowed and edge.dest not in came_from:
                came_from[edge.dest] = (here, PhaseTrigger(edge.trigger))
                frontier.append(edge.dest)
    raise NoPath(f"the phase table has no way from {start} to {to.value}")


def walk(state: AdapterState, to: Target, *, namespace: str, name: str) -> list[PhaseStep]:
    """The phase edges from the state's phase to `to`, each with its own reason and message.

    Already there, a changed reason is recorded through the phase's reflexive edge, where the table has one
    the target allows (`pods_unavailable` in Pending; `spec_invalid` in Failed for an invalid spec)."""
    if state.phase is to.phase:
        if (state.phase_reason, state.phase_message) == (to.reason, to.message):
            return []
        allowed = {t for t in PhaseTrigger if t not in _CHOSEN_BY_THE_CALLER} | {to.failure}
        reflexive = [e.trigger for e in PHASE_TABLE if e.source == e.dest == to.phase.value and e.trigger in allowed]
        return [PhaseStep(PhaseTrigger(reflexive[0]), to.reason, to.message)] if reflexive else []
    steps: list[PhaseStep] = []
    current = state.phase
    for trigger in path(current, to.phase, failure=to.failure, leaving=to.leaving):
        current = lands(current, trigger)
        if current is to.phase:
            steps.append(PhaseStep(trigger, to.reason, to.message))
        else:
            steps.append(PhaseStep(trigger, *_passing_words(state, trigger, namespace=namespace, name=name)))
    return steps


def _passing_words(state: AdapterState, trigger: PhaseTrigger, *, namespace: str, name: str) -> tuple[str, str]:
    """The reason and message of an edge a walk passes through on the way to its target."""
    if trigger is T.PODS_SELECTED:
        return "Scheduled", scheduled_message(namespace, name, state.selected_pods)
    if trigger is T.LOAD_STARTED:
        return "Loading", loading_message(p for p in state.placements if p.state in (S.LOADING, S.BACKOFF))
    if trigger is T.LOAD_VERIFIED:
        return "Loaded", loaded_message(state)
    return "", ""  # the table's defaults
