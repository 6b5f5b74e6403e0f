"""The pure core: phases, triggers, the transition tables, events, fold and the policies.

Nothing in this package performs I/O or reads a clock; `tests/test_layers.py` keeps it that way.
`decide` turns (state, trigger, facts) into events, `fold` turns events into state, and the policies
(`backoff`, `retriable`, `health`, `scheduling`) are plain functions the operator consults.
"""

from modeladapter.fsm.backoff import DEFAULT_BACKOFF, BackoffPolicy
from modeladapter.fsm.events import AdapterEvent, NewEvent, RecordedEvent, stamp
from modeladapter.fsm.facts import Facts
from modeladapter.fsm.machine import TransitionRejected, decide
from modeladapter.fsm.phases import Phase, PhaseTrigger, PlacementState, PlacementTrigger
from modeladapter.fsm.state import AdapterState, FoldError, Placement, advance, fold

__all__ = [
    "DEFAULT_BACKOFF",
    "AdapterEvent",
    "AdapterState",
    "BackoffPolicy",
    "Facts",
    "FoldError",
    "NewEvent",
    "Phase",
    "PhaseTrigger",
    "Placement",
    "PlacementState",
    "PlacementTrigger",
    "RecordedEvent",
    "TransitionRejected",
    "advance",
    "decide",
    "fold",
    "stamp",
]
