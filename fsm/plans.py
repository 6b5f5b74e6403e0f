"""What a planner returns, and the planner's working memory. Pure.

A `Plan` is the steps to take, in order: a trigger with its facts (`Fire`), or a fact to record (`Record`);
and the state they lead to. The operator decides each step itself, so a step the machines reject is a bug
(`TransitionRejected`), never a no-op.

To choose a step a planner needs the state after the ones before it (how many replicas are still missing
after a repair, say), so `Planner` decides each step through the machines as it goes. A step is taken only
under a rule that declares it (`modeladapter.fsm.rules`): the declarations are what the documentation says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modeladapter.fsm.events import AdapterEvent
from modeladapter.fsm.facts import Facts
from modeladapter.fsm.machine import decide
from modeladapter.fsm.observations import Observation, PlanSettings
from modeladapter.fsm.phases import PlacementState, PlacementTrigger, Trigger
from modeladapter.fsm.progress import Blocked
from modeladapter.fsm.rules import Rule
from modeladapter.fsm.state import AdapterState, Placement, advance
from modeladapter.fsm.table import sources

S, U = PlacementState, PlacementTrigger


class UndeclaredTrigger(AssertionError):
    """A rule fired a trigger it does not declare (`modeladapter.fsm.rules`): the declarations are wrong."""


@dataclass(frozen=True, slots=True)
class Fire:
    rule: str
    trigger: Trigger
    facts: Facts


@dataclass(frozen=True, slots=True)
class Record:
    rule: str
    event: AdapterEvent


Step = Fire | Record


@dataclass(frozen=True, slots=True)
class Plan:
    before: AdapterState
    """The state the plan was made for: its steps are decided from this one, and from no other."""
    steps: tuple[Step, ...]
    after: AdapterState
    """The state the steps lead to."""
    loads: tuple[str, ...] = ()
    """Pods the steps moved into Loading: each needs a load call."""
    desired: int = 0
    """Replicas wanted: `spec.replicas`, or every healthy matching pod."""
    blocked: Blocked | None = None
    """Why nothing could be placed, when nothing could."""


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What one engine call came to, as far as deciding goes."""

    error: str | None = None
    """None: it worked. Otherwise the error, with secrets already masked."""
    retriable: bool = False
    duration_ms: float = 0.0


@dataclass(slots=True)
class Planner:
    state: AdapterState
    observation: Observation
    settings: PlanSettings
    steps: list[Step] = field(default_factory=list)
    loads: dict[str, None] = field(default_factory=dict)
    """Pods moved into Loading, in order (a dict keeps the order and drops repeats)."""
    start: AdapterState = field(init=False)

    def __post_init__(self) -> None:
        self.start = self.state

    @property
    def now(self) -> datetime:
        return self.observation.now

    def fire(self, rule: Rule, trigger: Trigger, **facts: Any) -> None:
        if trigger not in rule.fires:
            raise UndeclaredTrigger(f"rule {rule.name} fired {trigger.value!r}, which it does not declare")
        decided = Facts(now=self.now, backoff=self.settings.backoff, **facts)
        self.state = advance(self.state, decide(self.state, trigger, decided), at=self.now)
        self.steps.append(Fire(rule.name, trigger, decided))
        if isinstance(trigger, PlacementTrigger) and decided.pod is not None:
            placement = self.state.placement(decided.pod)
            if placement is not None and placement.state is S.LOADING:
                self.loads[decided.pod] = None
            else:
                self.loads.pop(decided.pod, None)

    def record(self, rule: Rule, event: AdapterEvent) -> None:
        if event.type not in rule.records:
            raise UndeclaredTrigger(f"rule {rule.name} recorded {event.type}, which it does not declare")
        self.state = advance(self.state, [event], at=self.now)
        self.steps.append(Record(rule.name, event))

    def plan(self, *, desired: int = 0, blocked: Blocked | None = None) -> Plan:
        """The steps so far, and the state they lead to."""
        return Plan(self.start, tuple(self.steps), self.state, tuple(self.loads), desired, blocked)

    def placements(self, trigger: Trigger) -> list[Placement]:
        """The placements, as they are now, whose state takes `trigger` (the table says which)."""
        takes = sources(trigger)
        return [p for p in self.state.placements if p.state in takes]

    def unload(self, rule: Rule, pod: str, *, deadline: datetime | None = None) -> None:
        self.fire(rule, U.UNLOAD, pod=pod, unload_deadline=deadline or self.now + self.settings.unload_timeout)


class Pods:
    """The observation's pods sorted by what the rules ask of them."""

    def __init__(self, observation: Observation, settings: PlanSettings) -> None:
        self.all = observation.pods
        self.matching = {name: pod for name, pod in observation.pods.items() if pod.matches}
        health = {name: observation.health(pod, settings) for name, pod in observation.pods.items()}
        self.health = health
        self.healthy = {name: pod for name, pod in self.matching.items() if health[name].healthy}
        self.schedulable = {name: pod for name, pod in self.healthy.items() if health[name].schedulable}

    def has_room(self, pod: str) -> bool:
        seen = self.healthy.get(pod)
        capacity = seen.view.capacity if seen is not None else None
        return capacity is None or self.load(pod) < capacity

    def load(self, pod: str) -> int:
        seen = self.all.get(pod)
        return seen.load if seen is not None else 0
