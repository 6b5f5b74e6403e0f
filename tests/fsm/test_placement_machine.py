"""The placement machine: the adapter on one pod, for every (placement state, trigger) pair, and its facts.

The matrix is the outcome with plain facts (a non-retriable failure, no unload deadline, one attempt made);
the guarded choices (retriable or not, attempts left or not, deadline passed or not) have their own tests.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from modeladapter.fsm import (
    AdapterState,
    BackoffPolicy,
    Facts,
    Placement,
    PlacementState,
    PlacementTrigger,
    TransitionRejected,
    decide,
)
from modeladapter.fsm.events import (
    AdapterMissing,
    LoadFailed,
    LoadStarted,
    LoadSucceeded,
    PlacementChanged,
    PlacementExhausted,
    PodLost,
    PodSelected,
    PodSwitched,
    SpecObserved,
    Unloaded,
    UnloadFailed,
    UnloadStarted,
)
from modeladapter.fsm.phases import NEW

MATRIX = """
state      assign   start_load load_succeeded load_failed retry_due reconsider adapter_missing pod_lost pod_gone reload   unload    unload_succeeded unload_failed
New        Assigned -          -              -           -         -          -               -        -        -        -         -                -
Assigned   -        Loading    -              -           -         -          -               Lost     Unloaded -        Unloaded  -                -
Loading    -        -          Loaded         Exhausted   -         -          -               Lost     Unloaded -        Unloading -                -
Backoff    -        -          -              -           Loading   -          -               Lost     Unloaded -        Unloading -                -
Loaded     -        -          -              -           -         -          Lost            Lost     Unloaded Loading  Unloading -                -
Exhausted  -        -          -              -           -         Assigned   -               -        Unloaded -        Unloading -                -
Lost       Assigned -          -              -           -         -          -               -        Unloaded Loading  Unloading -                -
Unloading  -        -          -              -           -         -          -               -        Unloaded -        -         Unloaded         Unloading
Unloaded   -        -          -              -           -         -          -               -        -        -        -         -                -
"""
POD = "qwen-coder-1-5b-instruct-0"
ARTIFACT = "huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora"


def with_placement(state: str, *, attempts: int = 1, since: datetime | None = None) -> AdapterState:
    spec = SpecObserved(
        generation=1, artifact_url=ARTIFACT, replicas=1, scheduler_name="default", pod_selector="app=vllm"
    )
    if state == NEW:
        return AdapterState(spec=spec)
    placement = Placement(
        pod=POD, state=PlacementState(state), since=since or datetime(2026, 1, 1).astimezone(), attempts=attempts
    )
    return AdapterState(spec=spec, placements=(placement,))


def _cases() -> list[tuple[str, PlacementTrigger, str | None]]:
    header, *rows = [line.split() for line in MATRIX.strip().splitlines()]
    triggers = [PlacementTrigger(name) for name in header[1:]]
    return [
        (row[0], trigger, None if cell == "-" else cell)
        for row in rows
        for trigger, cell in zip(triggers, row[1:], strict=True)
    ]


def decided_state(events: list[object]) -> PlacementChanged:
    decisions = [e for e in events if isinstance(e, PlacementChanged)]
    assert len(decisions) == 1, events
    assert events[-1] is decisions[0], "the decision comes after the facts it was made from"
    return decisions[0]


def test_the_matrix_covers_every_state_and_every_trigger() -> None:
    cases = _cases()
    assert {state for state, _, _ in cases} == {NEW, *PlacementState}
    assert {trigger for _, trigger, _ in cases} == set(PlacementTrigger)


@pytest.mark.parametrize(
    ("state", "trigger", "expected"), [pytest.param(*case, id=f"{case[0]}-{case[1].value}") for case in _cases()]
)
def test_every_placement_trigger_pair(
    state: str, trigger: PlacementTrigger, expected: str | None, epoch: datetime
) -> None:
    facts = Facts(now=epoch, pod=POD, error="boom")
    if expected is None:
        with pytest.raises(TransitionRejected) as rejected:
            decide(with_placement(state), trigger, facts)
        assert rejected.value.pod == POD
        assert POD in str(rejected.value)
        return
    decision = decided_state(decide(with_placement(state), trigger, facts))
    assert decision.pod == POD
    assert decision.from_state == (None if state == NEW else PlacementState(state))
    assert decision.to_state == PlacementState(expected)
    assert decision.trigger == trigger.value


def test_a_placement_trigger_needs_a_pod(epoch: datetime) -> None:
    with pytest.raises(ValueError, match="needs facts.pod"):
        decide(AdapterState(), PlacementTrigger.ASSIGN, Facts(now=epoch))


class TestLoadFailures:
    def test_a_retriable_failure_backs_off_with_the_documented_delay(self, epoch: datetime) -> None:
        facts = Facts(now=epoch, pod=POD, error="connection refused", retriable=True)
        failed, decision = decide(with_placement("Loading", attempts=1), PlacementTrigger.LOAD_FAILED, facts)
        assert isinstance(failed, LoadFailed)
        assert (failed.attempt, failed.retriable, failed.error) == (1, True, "connection refused")
        assert failed.retry_at == epoch + timedelta(seconds=5)
        assert isinstance(decision, PlacementChanged) and decision.to_state is PlacementState.BACKOFF

    def test_the_fifth_retriable_failure_still_waits_the_80_seconds(self, epoch: datetime) -> None:
        facts = Facts(now=epoch, pod=POD, error="timeout", retriable=True)
        failed, decision = decide(with_placement("Loading", attempts=5), PlacementTrigger.LOAD_FAILED, facts)
        assert isinstance(failed, LoadFailed) and failed.retry_at == epoch + timedelta(seconds=80)
        assert isinstance(decision, PlacementChanged) and decision.to_state is PlacementState.BACKOFF

    def test_a_non_retriable_failure_exhausts_the_pod_at_once(self, epoch: datetime) -> None:
        facts = Facts(now=epoch, pod=POD, error="No adapter found for /adapters/x", retriable=False)
        failed, exhausted, decision = decide(with_placement("Loading", attempts=1), PlacementTrigger.LOAD_FAILED, facts)
        assert isinstance(failed, LoadFailed) and (failed.retriable, failed.retry_at) == (False, None)
        assert isinstance(exhausted, PlacementExhausted)
        assert (exhausted.cause, exhausted.attempts) == ("non-retriable", 1)
        assert exhausted.reconsider_at == epoch + timedelta(seconds=300)
        assert isinstance(decision, PlacementChanged) and decision.to_state is PlacementState.EXHAUSTED


class TestRetryTimer:
    def test_a_due_retry_starts_the_next_attempt(self, epoch: datetime) -> None:
        started, decision = decide(
            with_placement("Backoff", attempts=2), PlacementTrigger.RETRY_DUE, Facts(now=epoch, pod=POD)
        )
        assert isinstance(started, LoadStarted) and started.attempt == 3
        assert started.artifact_url == ARTIFACT
        assert isinstance(decision, PlacementChanged) and decision.to_state is PlacementState.LOADING

    def test_after_five_attempts_a_due_retry_exhausts_the_pod(self, epoch: datetime) -> None:
        exhausted, decision = decide(
            with_placement("Backoff", attempts=5), PlacementTrigger.RETRY_DUE, Facts(now=epoch, pod=POD)
        )
        assert isinstance(exhausted, PlacementExhausted)
        assert (exhausted.cause, exhausted.attempts) == ("max-retries", 5)
        assert isinstance(decision, PlacementChanged) and decision.to_state is PlacementState.EXHAUSTED

    def test_the_attempt_limit_comes_from_the_policy(self, epoch: datetime) -> None:
        facts = Facts(now=epoch, pod=POD, backoff=BackoffPolicy(max_attempts=2))
        exhausted, _ = decide(with_placement("Backoff", attempts=2), PlacementTrigger.RETRY_DUE, facts)
        assert isinstance(exhausted, PlacementExhausted) and exhausted.attempts == 2


class TestUnloading:
    def test_a_failed_unload_is_retried_until_the_deadline(self, epoch: datetime) -> None:
        facts = Facts(now=epoch, pod=POD, error="connection refused", unload_deadline=epoch + timedelta(seconds=1))
        failed, decision = decide(with_placement("Unloading"), PlacementTrigger.UNLOAD_FAILED, facts)
        assert isinstance(failed, UnloadFailed) and not failed.abandoned
        assert isinstance(decision, PlacementChanged) and decision.to_state is PlacementState.UNLOADING

    def test_after_the_deadline_a_failing_unload_is_abandoned(self, epoch: datetime) -> None:
        facts = Facts(now=epoch, pod=POD, error="connection refused", unload_deadline=epoch)
        failed, unloaded, decision = decide(with_placement("Unloading"), PlacementTrigger.UNLOAD_FAILED, facts)
        assert isinstance(failed, UnloadFailed) and failed.abandoned
        assert isinstance(unloaded, Unloaded) and unloaded.outcome == "abandoned"
        assert isinstance(decision, PlacementChanged) and decision.to_state is PlacementState.UNLOADED

    def test_the_deadline_set_when_unloading_began_cannot_be_moved_later(self, epoch: datetime) -> None:
        from modeladapter.fsm.state import advance

        started = decide(
            with_placement("Loaded"),
            PlacementTrigger.UNLOAD,
            Facts(now=epoch, pod=POD, unload_deadline=epoch + timedelta(seconds=60)),
        )
        state = advance(with_placement("Loaded"), started, at=epoch)
        placement = state.placement(POD)
        assert placement is not None and placement.unload_deadline == epoch + timedelta(seconds=60)
        later = epoch + timedelta(seconds=61)
        # The caller offers a fresh deadline, as a reconcile computing "now + timeout" would: the log's wins.
        events = decide(
            state,
            PlacementTrigger.UNLOAD_FAILED,
            Facts(now=later, pod=POD, error="refused", unload_deadline=later + timedelta(seconds=60)),
        )
        assert isinstance(events[0], UnloadFailed) and events[0].abandoned

    def test_a_failed_unload_waits_before_the_next_try_and_keeps_its_since(self, epoch: datetime) -> None:
        from modeladapter.fsm.state import advance

        state = advance(
            with_placement("Loaded"),
            decide(with_placement("Loaded"), PlacementTrigger.UNLOAD, Facts(now=epoch, pod=POD)),
            at=epoch,
        )
        later = epoch + timedelta(seconds=3)
        failed = decide(state, PlacementTrigger.UNLOAD_FAILED, Facts(now=later, pod=POD, error="refused"))
        assert isinstance(failed[0], UnloadFailed) and failed[0].retry_at == later + timedelta(seconds=5)
        placement = advance(state, failed, at=later).placement(POD)
        assert placement is not None
        assert (placement.since, placement.next_retry_at) == (epoch, later + timedelta(seconds=5))

    @pytest.mark.parametrize("state", ["Assigned", "Loading", "Backoff", "Loaded", "Exhausted", "Lost", "Unloading"])
    def test_a_pod_that_is_gone_counts_as_unloaded(self, state: str, epoch: datetime) -> None:
        lost, unloaded, decision = decide(
            with_placement(state), PlacementTrigger.POD_GONE, Facts(now=epoch, pod=POD, reason="pod deleted")
        )
        assert isinstance(lost, PodLost) and lost.reason == "pod deleted"
        assert isinstance(unloaded, Unloaded) and unloaded.outcome == "pod-gone"
        assert isinstance(decision, PlacementChanged) and decision.to_state is PlacementState.UNLOADED

    def test_a_pod_that_was_never_tried_needs_no_unload_call(self, epoch: datetime) -> None:
        unloaded, decision = decide(with_placement("Assigned"), PlacementTrigger.UNLOAD, Facts(now=epoch, pod=POD))
        assert isinstance(unloaded, Unloaded) and unloaded.outcome == "not-loaded"
        assert isinstance(decision, PlacementChanged) and decision.to_state is PlacementState.UNLOADED

    @pytest.mark.parametrize("state", ["Loaded", "Loading", "Backoff", "Exhausted", "Lost"])
    def test_a_pod_that_may_hold_the_adapter_is_unloaded_by_a_call(self, state: str, epoch: datetime) -> None:
        """A load that timed out may still have landed; only the engine can say."""
        started, decision = decide(with_placement(state), PlacementTrigger.UNLOAD, Facts(now=epoch, pod=POD))
        assert isinstance(started, UnloadStarted)
        assert isinstance(decision, PlacementChanged) and decision.to_state is PlacementState.UNLOADING


class TestFactsOfEachEdge:
    def test_assigning_a_pod_records_the_policy_that_chose_it(self, epoch: datetime) -> None:
        facts = Facts(now=epoch, pod=POD, policy="least-adapters", reason="fewest adapters (0)")
        selected, decision = decide(with_placement(NEW), PlacementTrigger.ASSIGN, facts)
        assert selected == PodSelected(pod=POD, policy="least-adapters", reason="fewest adapters (0)")
        assert isinstance(decision, PlacementChanged) and decision.from_state is None

    def test_assigning_a_replacement_records_the_pod_switch(self, epoch: datetime) -> None:
        facts = Facts(now=epoch, pod=POD, policy="least-adapters", replaces="old-pod", reason="MaxRetriesExceeded")
        _, switched, _ = decide(with_placement(NEW), PlacementTrigger.ASSIGN, facts)
        assert switched == PodSwitched(from_pod="old-pod", to_pod=POD, reason="MaxRetriesExceeded")

    def test_a_successful_load_records_its_duration(self, epoch: datetime) -> None:
        facts = Facts(now=epoch, pod=POD, duration_ms=183.5)
        succeeded, _ = decide(with_placement("Loading", attempts=2), PlacementTrigger.LOAD_SUCCEEDED, facts)
        assert succeeded == LoadSucceeded(pod=POD, attempt=2, duration_ms=183.5)

    def test_an_adapter_no_longer_listed_records_why_it_is_missing(self, epoch: datetime) -> None:
        facts = Facts(now=epoch, pod=POD, reason="not listed by GET /v1/models")
        missing, decision = decide(with_placement("Loaded"), PlacementTrigger.ADAPTER_MISSING, facts)
        assert missing == AdapterMissing(pod=POD, reason="not listed by GET /v1/models")
        assert isinstance(decision, PlacementChanged) and decision.to_state is PlacementState.LOST

    def test_a_reload_after_a_spec_change_loads_the_new_artifact(self, epoch: datetime) -> None:
        facts = Facts(now=epoch, pod=POD, artifact_url="/models/adapters/v2")
        started, _ = decide(with_placement("Loaded", attempts=0), PlacementTrigger.RELOAD, facts)
        assert started == LoadStarted(pod=POD, attempt=1, artifact_url="/models/adapters/v2")
