"""`decide(state, trigger, facts) -> events`: the tables of `modeladapter.fsm.table`, run by `transitions`.

Each table is built once into a synchronous `transitions.Machine` with no models of its own
(`model=None`, no auto transitions, `send_event=True`, `model_override=True`). A decision puts a `Decision`
model in the current state, fires the trigger, and collects what the callbacks emitted; the model is then
cleared and kept for the next decision (joining a machine is most of the cost of a decision). Callbacks only emit events: the edge's facts before the state changes, the decision
(`PhaseChanged` / `PlacementChanged`) after. No I/O, no clock: the time comes in `facts`.

Not `AsyncMachine`: it runs callbacks concurrently and cancels in-flight triggers, which is the opposite of
what a replayable decision needs. The asynchronous work happens in the operator, after `decide` returns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from transitions import EventData, Machine, MachineError

from modeladapter.fsm.emitters import Emitter
from modeladapter.fsm.events import AdapterEvent, PhaseChanged, PlacementChanged
from modeladapter.fsm.facts import Decision, Facts
from modeladapter.fsm.guards import Guard
from modeladapter.fsm.phases import NEW, Phase, PhaseTrigger, PlacementState, Trigger
from modeladapter.fsm.state import AdapterState, Placement
from modeladapter.fsm.table import (
    DEFAULT_PHASE_REASONS,
    PHASE_STATES,
    PHASE_TABLE,
    PLACEMENT_STATES,
    PLACEMENT_TABLE,
    Edge,
)

# With `model_override=True` transitions binds only what the model declares (`trigger`) and logs a warning for
# each of the ~40 convenience methods it skips, on every `add_model`. Those skips are the point of the
# setting; the warnings would flood the operator's log and cost most of a decision's time.
logging.getLogger("transitions.core").setLevel(logging.ERROR)


class TransitionRejected(ValueError):
    """The trigger is not accepted in the current state; nothing was decided."""

    def __init__(self, machine: str, state: str, trigger: Trigger, *, pod: str | None = None) -> None:
        self.machine = machine
        self.state = state
        self.trigger = trigger
        self.pod = pod
        where = f" of pod {pod!r}" if pod is not None else ""
        super().__init__(f"{machine} machine{where}: trigger {trigger.value!r} is not accepted in state {state!r}")


def _unpack(event: EventData) -> tuple[Decision, str, str]:
    """The decision model and the edge's source and destination state of a fired transition."""
    decision, transition = event.model, event.transition
    assert isinstance(decision, Decision) and transition is not None and transition.dest is not None
    return decision, transition.source, transition.dest


def _record_phase_change(event: EventData) -> None:
    decision, source, dest = _unpack(event)
    trigger = PhaseTrigger(event.event.name)
    default_reason, default_message = DEFAULT_PHASE_REASONS[trigger]
    decision.emitted.append(
        PhaseChanged(
            from_phase=None if source == NEW else Phase(source),
            to_phase=Phase(dest),
            trigger=trigger.value,
            reason=decision.facts.reason or default_reason,
            message=decision.facts.message or default_message,
        )
    )


def _record_placement_change(event: EventData) -> None:
    decision, source, dest = _unpack(event)
    decision.emitted.append(
        PlacementChanged(
            pod=decision.pod,
            from_state=None if source == NEW else PlacementState(source),
            to_state=PlacementState(dest),
            trigger=event.event.name,
        )
    )


def _guarded(guard: Guard) -> Callable[[EventData], bool]:
    def check(event: EventData) -> bool:
        assert isinstance(event.model, Decision)
        return guard(event.model)

    return check


def _emitting(emitter: Emitter) -> Callable[[EventData], None]:
    def run(event: EventData) -> None:
        assert isinstance(event.model, Decision)
        event.model.emitted.extend(emitter(event.model))

    return run


def build_machine(table: tuple[Edge, ...], states: tuple[str, ...], record: Callable[[EventData], None]) -> Machine:
    """One shared, model-less machine for a table."""
    transitions: list[dict[str, Any]] = []
    for edge in table:
        # Plain strings, not enum members: transitions would otherwise report member names ("PENDING").
        spec: dict[str, Any] = {"trigger": edge.trigger.value, "source": str(edge.source), "dest": str(edge.dest)}
        if edge.guard is not None:
            spec["conditions"] = [_guarded(edge.guard)]
        if edge.emit is not None:
            spec["before"] = [_emitting(edge.emit)]
        transitions.append(spec)
    return Machine(
        model=None,
        states=[str(state) for state in states],
        transitions=transitions,
        initial=None,
        auto_transitions=False,
        ignore_invalid_triggers=False,
        send_event=True,
        model_override=True,
        after_state_change=record,
    )


PHASE_MACHINE = build_machine(PHASE_TABLE, PHASE_STATES, _record_phase_change)
PLACEMENT_MACHINE = build_machine(PLACEMENT_TABLE, PLACEMENT_STATES, _record_placement_change)
_PHASE_TRIGGERS = frozenset(edge.trigger for edge in PHASE_TABLE)
_PLACEMENT_TRIGGERS = frozenset(edge.trigger for edge in PLACEMENT_TABLE)


class _Models:
    """Decision models that joined a machine once and are re-armed for each decision.

    `add_model` binds the trigger and checks ~40 attribute names on every call, two thirds of a decision's
    time; a model that stays in the machine only has its state set. A decision takes a model off the list
    and puts it back, so nested or concurrent decisions (threads) never share one.
    """

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self._idle: list[Decision] = []

    def take(self, state: AdapterState, facts: Facts, placement: Placement | None, current: str) -> Decision:
        try:
            decision = self._idle.pop()
        except IndexError:
            decision = Decision(adapter=state, facts=facts, placement=placement)
            self.machine.add_model(decision, initial=current)
        else:
            decision.adapter, decision.facts, decision.placement = state, facts, placement
            self.machine.set_state(current, model=decision)
        decision.emitted = []
        return decision

    def give_back(self, decision: Decision) -> None:
        # Hold on to nothing of the decision: an idle model must not keep a folded state alive.
        decision.adapter, decision.facts, decision.placement, decision.emitted = _NOBODY, _NO_FACTS, None, []
        self._idle.append(decision)


_NOBODY = AdapterState()
_NO_FACTS = Facts(now=datetime.min.replace(tzinfo=UTC))


_PHASE_MODELS = _Models(PHASE_MACHINE)
_PLACEMENT_MODELS = _Models(PLACEMENT_MACHINE)


def decide(state: AdapterState, trigger: Trigger, facts: Facts) -> list[AdapterEvent]:
    """The events that `trigger`, observed with `facts`, produces from `state`.

    Phase triggers move the adapter's phase; placement triggers move the placement of `facts.pod`.
    Raises `TransitionRejected` if the current state does not accept the trigger.
    """
    placement: Placement | None = None
    if isinstance(trigger, PhaseTrigger):
        models, name, current = _PHASE_MODELS, "phase", str(state.phase or NEW)
        pod = None
        known = trigger in _PHASE_TRIGGERS
    else:
        if facts.pod is None:
            raise ValueError(f"placement trigger {trigger.value!r} needs facts.pod")
        pod = facts.pod
        placement = state.placement(pod)
        models, name = _PLACEMENT_MODELS, "placement"
        current = str(placement.state if placement is not None else NEW)
        known = trigger in _PLACEMENT_TRIGGERS
    if not known:
        raise TransitionRejected(name, current, trigger, pod=pod)
    decision = models.take(state, facts, placement, current)
    try:
        accepted = decision.trigger(trigger.value)
        emitted = decision.emitted
    except MachineError:
        accepted = False
    finally:
        models.give_back(decision)
    if not accepted:
        raise TransitionRejected(name, current, trigger, pod=pod)
    return emitted
