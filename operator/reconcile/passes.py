"""One reconcile's working memory: the state as the log has it, what the pass decided since, and when it is.

`Pass.take(plan)` decides each step of a plan (`modeladapter.fsm.planning`) through the state machines. The
planner chose those steps by deciding them itself, from the same state, so the machines rejecting one is a
bug: it raises `RejectedStep`, which the controller counts and logs, and a test fails. Nothing swallows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from modeladapter.fsm.events import AdapterEvent, RecordedEvent
from modeladapter.fsm.machine import TransitionRejected, decide
from modeladapter.fsm.plans import CallOutcome, Fire, Plan
from modeladapter.fsm.state import AdapterState, advance, fold
from modeladapter.operator.api.status import StatusDocument
from modeladapter.operator.api.view import AdapterRef


class RejectedStep(RuntimeError):
    """The state machines rejected a step the planner chose: the planner and the tables disagree."""


@dataclass(slots=True)
class Pass:
    ref: AdapterRef
    base: AdapterState
    """The state as the log has it: the next append expects this version."""
    now: datetime
    reconcile_id: str
    generation: int = 1
    """The object's generation, stamped on what this pass appends."""
    shown: StatusDocument = field(default_factory=lambda: StatusDocument())
    """The status as the object shows it, or as this pass last wrote it."""
    state: AdapterState = field(init=False)
    pending: list[AdapterEvent] = field(default_factory=list)
    """Decided, not appended yet."""
    appended: list[AdapterEvent] = field(default_factory=list)
    append_seconds: list[float] = field(default_factory=list)
    load_calls: list[CallOutcome] = field(default_factory=list)
    """The load calls this pass made to engines, for the controller's metrics."""

    def __post_init__(self) -> None:
        self.state = self.base

    @property
    def uid(self) -> str:
        return self.ref.uid

    def tick(self, now: datetime) -> None:
        """Move the pass's clock after waiting on engines: outcomes are recorded, and backoffs measured, from
        when they happened, not from when the pass began (a 5 s timeout must not eat a 5 s backoff)."""
        self.now = max(self.now, now)

    def take(self, plan: Plan) -> None:
        """Decide the plan's steps, in order, and keep what they record."""
        if plan.before is not self.state:
            raise RejectedStep("a plan was made for another state than this pass's")
        for step in plan.steps:
            if isinstance(step, Fire):
                try:
                    events = decide(self.state, step.trigger, step.facts)
                except TransitionRejected as rejected:
                    raise RejectedStep(f"rule {step.rule}: {rejected}") from rejected
            else:
                events = [step.event]
            self.pending.extend(events)
            self.state = advance(self.state, events, at=self.now)

    def appended_as(self, recorded: list[RecordedEvent], seconds: float) -> None:
        """The pending events are in the log now, as `recorded`."""
        self.base = self.state = fold(recorded, self.base)
        self.appended.extend(self.pending)
        self.pending.clear()
        self.append_seconds.append(seconds)
