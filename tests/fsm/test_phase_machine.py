"""The phase machine: which trigger moves which phase where, for every (phase, trigger) pair.

The matrix below is the specification, written independently of `fsm/table.py`: `-` means the trigger is
rejected in that phase. A change to the table that is not also made here fails this test.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from modeladapter.fsm import AdapterState, Facts, Phase, PhaseTrigger, TransitionRejected, decide
from modeladapter.fsm.events import PhaseChanged
from modeladapter.fsm.phases import NEW

MATRIX = """
state        created  spec_invalid spec_changed pods_unavailable pods_selected pods_changed load_started load_verified loading_failed service_bound service_lost retry_due deletion_requested
New          Pending  -            -            -                -             -            -            -             -              -             -            -         Terminating
Pending      -        Failed       -            Pending          Scheduled     -            -            -             -              -             -            -         Terminating
Scheduled    -        Failed       -            Pending          -             -            Loading      -             -              -             -            -         Terminating
Loading      -        Failed       -            Pending          Scheduled     -            -            Bound         Failed         -             -            -         Terminating
Bound        -        Failed       -            Pending          Scheduled     -            Loading      -             -              Running       -            -         Terminating
Running      -        Failed       -            Pending          Scheduled     -            Loading      -             -              -             Bound        -         Terminating
Failed       -        Failed       Pending      -                -             Pending      -            -             -              -             -            Pending   Terminating
Terminating  -        -            -            -                -             -            -            -             -              -             -            -         -
"""


def _cases() -> list[tuple[str, PhaseTrigger, str | None]]:
    header, *rows = [line.split() for line in MATRIX.strip().splitlines()]
    triggers = [PhaseTrigger(name) for name in header[1:]]
    return [
        (row[0], trigger, None if cell == "-" else cell)
        for row in rows
        for trigger, cell in zip(triggers, row[1:], strict=True)
    ]


def _in_phase(phase: str) -> AdapterState:
    return AdapterState() if phase == NEW else AdapterState(phase=Phase(phase))


def test_the_matrix_covers_every_phase_and_every_trigger() -> None:
    cases = _cases()
    assert {state for state, _, _ in cases} == {NEW, *Phase}
    assert {trigger for _, trigger, _ in cases} == set(PhaseTrigger)
    assert len(cases) == (len(Phase) + 1) * len(PhaseTrigger)


@pytest.mark.parametrize(
    ("state", "trigger", "expected"), [pytest.param(*case, id=f"{case[0]}-{case[1].value}") for case in _cases()]
)
def test_every_phase_trigger_pair(state: str, trigger: PhaseTrigger, expected: str | None, epoch: datetime) -> None:
    adapter = _in_phase(state)
    if expected is None:
        with pytest.raises(TransitionRejected) as rejected:
            decide(adapter, trigger, Facts(now=epoch))
        assert rejected.value.state == state
        assert rejected.value.trigger is trigger
        assert trigger.value in str(rejected.value) and state in str(rejected.value)
        return
    (decision,) = decide(adapter, trigger, Facts(now=epoch))
    assert isinstance(decision, PhaseChanged)
    assert decision.from_phase == (None if state == NEW else Phase(state))
    assert decision.to_phase == Phase(expected)
    assert decision.trigger == trigger.value


class TestPhaseDecisionsCarryTheirReason:
    def test_the_first_decision_is_the_seed_documentations_initialized_condition(self, epoch: datetime) -> None:
        (decision,) = decide(AdapterState(), PhaseTrigger.CREATED, Facts(now=epoch))
        assert isinstance(decision, PhaseChanged)
        assert (decision.reason, decision.message) == ("ModelAdapterPending", "Starting reconciliation")

    def test_the_callers_reason_and_message_win_over_the_defaults(self, epoch: datetime) -> None:
        facts = Facts(now=epoch, reason="InsufficientCapacity", message="every matching pod is full (4/4 adapters)")
        (decision,) = decide(AdapterState(phase=Phase.PENDING), PhaseTrigger.PODS_UNAVAILABLE, facts)
        assert isinstance(decision, PhaseChanged)
        assert decision.reason == "InsufficientCapacity"
        assert decision.message == "every matching pod is full (4/4 adapters)"

    def test_a_reflexive_edge_still_records_a_decision(self, epoch: datetime) -> None:
        facts = Facts(now=epoch, reason="InvalidSpec", message="spec.replicas: must be at least 1")
        (decision,) = decide(AdapterState(phase=Phase.FAILED), PhaseTrigger.SPEC_INVALID, facts)
        assert isinstance(decision, PhaseChanged)
        assert (decision.from_phase, decision.to_phase) == (Phase.FAILED, Phase.FAILED)
        assert decision.message == "spec.replicas: must be at least 1"


def test_the_seed_documentations_phase_sequence_is_a_path_of_the_machine(epoch: datetime) -> None:
    """Pending -> Scheduled -> Loading -> Bound -> Running, one trigger each."""
    state = AdapterState()
    phases = []
    for trigger in (
        PhaseTrigger.CREATED,
        PhaseTrigger.PODS_SELECTED,
        PhaseTrigger.LOAD_STARTED,
        PhaseTrigger.LOAD_VERIFIED,
        PhaseTrigger.SERVICE_BOUND,
    ):
        (decision,) = decide(state, trigger, Facts(now=epoch))
        assert isinstance(decision, PhaseChanged)
        state = AdapterState(phase=decision.to_phase)
        phases.append(decision.to_phase.value)
    assert phases == ["Pending", "Scheduled", "Loading", "Bound", "Running"]
