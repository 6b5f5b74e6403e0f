"""Following `next_trigger` through the phase table reaches any phase from any phase, one accepted edge at a time."""

from __future__ import annotations

from datetime import datetime

import pytest

from modeladapter.fsm import AdapterState, Facts, Phase, PhaseTrigger, decide
from modeladapter.fsm.events import PhaseChanged
from modeladapter.fsm.progress import next_trigger

STARTS: list[Phase | None] = [None, *[p for p in Phase if p is not Phase.TERMINATING]]
FAILURES = [PhaseTrigger.LOADING_FAILED, PhaseTrigger.SPEC_INVALID]


def walk(start: Phase | None, target: Phase, failure: PhaseTrigger, now: datetime) -> list[Phase]:
    state = AdapterState(phase=start)
    visited: list[Phase] = []
    for _ in range(8):
        trigger = next_trigger(state.phase, target, failure=failure, leaving_failed=PhaseTrigger.SPEC_CHANGED)
        if trigger is None:
            return visited
        (decision,) = decide(state, trigger, Facts(now=now))  # raises if the table does not accept it
        assert isinstance(decision, PhaseChanged)
        state = AdapterState(phase=decision.to_phase)
        visited.append(decision.to_phase)
    raise AssertionError(f"{start} -> {target}: no arrival after 8 steps: {visited}")


@pytest.mark.parametrize("failure", FAILURES, ids=lambda t: t.value)
@pytest.mark.parametrize("target", list(Phase), ids=str)
@pytest.mark.parametrize("start", STARTS, ids=str)
def test_every_phase_is_reachable_from_every_phase(start: Phase | None, target: Phase, failure: PhaseTrigger, epoch: datetime) -> None:
    visited = walk(start, target, failure, epoch)
    assert (visited[-1] if visited else start) is target


def test_one_reconcile_from_nothing_to_running_shows_the_documented_sequence(epoch: datetime) -> None:
    assert walk(None, Phase.RUNNING, PhaseTrigger.LOADING_FAILED, epoch) == [
        Phase.PENDING, Phase.SCHEDULED, Phase.LOADING, Phase.BOUND, Phase.RUNNING,
    ]


def test_running_out_of_pods_fails_through_loading(epoch: datetime) -> None:
    assert walk(Phase.RUNNING, Phase.FAILED, PhaseTrigger.LOADING_FAILED, epoch) == [Phase.LOADING, Phase.FAILED]


def test_an_invalid_spec_fails_at_once(epoch: datetime) -> None:
    assert walk(Phase.RUNNING, Phase.FAILED, PhaseTrigger.SPEC_INVALID, epoch) == [Phase.FAILED]


def test_a_failed_adapter_starts_over_from_pending(epoch: datetime) -> None:
    assert walk(Phase.FAILED, Phase.RUNNING, PhaseTrigger.LOADING_FAILED, epoch) == [
        Phase.PENDING, Phase.SCHEDULED, Phase.LOADING, Phase.BOUND, Phase.RUNNING,
    ]


def test_terminating_is_final() -> None:
    assert next_trigger(Phase.TERMINATING, Phase.RUNNING) is None
