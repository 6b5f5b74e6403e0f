"""The phase walk: derived from the phase table, it reaches any phase from any phase, one accepted edge at a
time, and says on each edge what the adapter is doing there."""

from __future__ import annotations

from datetime import datetime

import pytest

from modeladapter.fsm import AdapterState, Facts, Phase, PhaseTrigger, decide
from modeladapter.fsm.events import PhaseChanged
from modeladapter.fsm.progress import ENTERING_FAILED, LEAVING_FAILED, NoPath, Target, path, walk

STARTS: list[Phase | None] = [None, *[p for p in Phase if p is not Phase.TERMINATING]]
FAILURES = [PhaseTrigger.LOADING_FAILED, PhaseTrigger.SPEC_INVALID]


def visited(start: Phase | None, target: Phase, failure: PhaseTrigger, now: datetime) -> list[Phase]:
    state = AdapterState(phase=start)
    phases: list[Phase] = []
    for trigger in path(start, target, failure=failure, leaving=PhaseTrigger.SPEC_CHANGED):
        (decision,) = decide(state, trigger, Facts(now=now))  # raises if the table does not accept it
        assert isinstance(decision, PhaseChanged)
        state = AdapterState(phase=decision.to_phase)
        phases.append(decision.to_phase)
    return phases


@pytest.mark.parametrize("failure", FAILURES, ids=lambda t: t.value)
@pytest.mark.parametrize("target", list(Phase), ids=str)
@pytest.mark.parametrize("start", STARTS, ids=str)
def test_every_phase_is_reachable_from_every_phase(
    start: Phase | None, target: Phase, failure: PhaseTrigger, epoch: datetime
) -> None:
    phases = visited(start, target, failure, epoch)
    assert (phases[-1] if phases else start) is target


def test_one_reconcile_from_nothing_to_running_shows_the_documented_sequence(epoch: datetime) -> None:
    assert visited(None, Phase.RUNNING, PhaseTrigger.LOADING_FAILED, epoch) == [
        Phase.PENDING,
        Phase.SCHEDULED,
        Phase.LOADING,
        Phase.BOUND,
        Phase.RUNNING,
    ]


def test_running_out_of_pods_fails_through_loading(epoch: datetime) -> None:
    assert visited(Phase.RUNNING, Phase.FAILED, PhaseTrigger.LOADING_FAILED, epoch) == [Phase.LOADING, Phase.FAILED]


def test_an_invalid_spec_fails_at_once(epoch: datetime) -> None:
    assert visited(Phase.RUNNING, Phase.FAILED, PhaseTrigger.SPEC_INVALID, epoch) == [Phase.FAILED]


def test_a_failed_adapter_starts_over_from_pending_for_the_reason_given(epoch: datetime) -> None:
    assert path(Phase.FAILED, Phase.RUNNING, leaving=PhaseTrigger.PODS_CHANGED)[0] is PhaseTrigger.PODS_CHANGED
    assert visited(Phase.FAILED, Phase.RUNNING, PhaseTrigger.LOADING_FAILED, epoch) == [
        Phase.PENDING,
        Phase.SCHEDULED,
        Phase.LOADING,
        Phase.BOUND,
        Phase.RUNNING,
    ]


def test_terminating_is_final() -> None:
    assert path(Phase.TERMINATING, Phase.TERMINATING) == ()
    with pytest.raises(NoPath):
        path(Phase.TERMINATING, Phase.RUNNING)


def test_the_edges_a_walk_takes_only_when_told_are_read_off_the_table() -> None:
    assert {PhaseTrigger.SPEC_INVALID, PhaseTrigger.LOADING_FAILED} == ENTERING_FAILED
    assert {PhaseTrigger.SPEC_CHANGED, PhaseTrigger.PODS_CHANGED, PhaseTrigger.RETRY_DUE} == LEAVING_FAILED


def test_the_edges_passed_through_say_what_happens_there_and_the_last_says_the_targets_words() -> None:
    to = Target(Phase.RUNNING, "ModelAdapterAvailable", "ModelAdapter default/a is ready")
    steps = walk(AdapterState(phase=Phase.PENDING), to, namespace="default", name="a")
    assert [(s.trigger.value, s.reason) for s in steps] == [
        ("pods_selected", "Scheduled"),
        ("load_started", "Loading"),
        ("load_verified", "Loaded"),
        ("service_bound", "ModelAdapterAvailable"),
    ]
    assert steps[0].message == "ModelAdapter default/a has selected 0 pods for scheduling: []"
    assert steps[-1].message == to.message


def test_a_new_reason_in_the_same_phase_goes_through_a_reflexive_edge_where_the_table_has_one() -> None:
    pending = AdapterState(phase=Phase.PENDING, phase_reason="NoCandidatePods", phase_message="none")
    waiting = Target(Phase.PENDING, "WaitingForStablePods", "soon")
    assert [(s.trigger, s.reason) for s in walk(pending, waiting, namespace="n", name="a")] == [
        (PhaseTrigger.PODS_UNAVAILABLE, "WaitingForStablePods")
    ]
    assert walk(pending, Target(Phase.PENDING, "NoCandidatePods", "none"), namespace="n", name="a") == []
    failed = AdapterState(phase=Phase.FAILED, phase_reason="InvalidSpec", phase_message="old")
    invalid_again = Target(Phase.FAILED, "InvalidSpec", "new", failure=PhaseTrigger.SPEC_INVALID)
    assert [s.trigger for s in walk(failed, invalid_again, namespace="n", name="a")] == [PhaseTrigger.SPEC_INVALID]
    running = AdapterState(phase=Phase.RUNNING, phase_reason="ModelAdapterAvailable", phase_message="old")
    assert walk(running, Target(Phase.RUNNING, "ModelAdapterAvailable", "new"), namespace="n", name="a") == []
