"""State is the fold of the events: deterministic, resumable from any prefix, and never past the retry limit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import event, given, settings, target
from hypothesis import strategies as st

from modeladapter.fsm import (
    AdapterState,
    BackoffPolicy,
    Facts,
    FoldError,
    Phase,
    PhaseTrigger,
    PlacementState,
    PlacementTrigger,
    TransitionRejected,
    advance,
    decide,
    fold,
)
from modeladapter.fsm.events import AdapterEvent, Finalized, RecordedEvent, ServiceBound, SpecObserved
from modeladapter.fsm.phases import NEW
from modeladapter.fsm.table import accepts

RecordFn = Callable[..., list[RecordedEvent]]
Steps = list[tuple[PhaseTrigger | PlacementTrigger, Facts]]

PODS = ("pod-a", "pod-b", "pod-c")
SPEC = SpecObserved(
    generation=1, artifact_url="/adapters/sql-lora", replicas=2, scheduler_name="default", pod_selector="app=vllm"
)


def run(steps: Steps, start: datetime) -> list[AdapterEvent]:
    """Feed triggers through `decide`, skipping rejected ones, and return every event it produced."""
    state = advance(AdapterState(), [SPEC], at=start)
    produced: list[AdapterEvent] = [SPEC]
    for trigger, facts in steps:
        try:
            events = decide(state, trigger, facts)
        except TransitionRejected:
            continue
        state = advance(state, events, at=facts.now)
        produced.extend(events)
    return produced


ALL_TRIGGERS: list[PhaseTrigger | PlacementTrigger] = [*PhaseTrigger, *PlacementTrigger]
RETRY_CYCLE = {PlacementTrigger.START_LOAD, PlacementTrigger.LOAD_FAILED, PlacementTrigger.RETRY_DUE}


@st.composite
def trigger_sequences(draw: st.DrawFn) -> Steps:
    """Arbitrary sequences of triggers with arbitrary facts: what a confused or hostile caller could send."""
    start = datetime(2026, 11, 26).astimezone()
    steps = []
    clock = start
    for _ in range(draw(st.integers(min_value=0, max_value=60))):
        clock += timedelta(seconds=draw(st.integers(min_value=0, max_value=400)))
        trigger = draw(st.sampled_from(ALL_TRIGGERS))
        facts = Facts(
            now=clock,
            pod=draw(st.sampled_from(PODS)),
            retriable=draw(st.booleans()),
            error=draw(st.sampled_from(["", "connection refused", "No adapter found", "HTTP 503"])),
            unload_deadline=draw(st.sampled_from([None, clock, clock + timedelta(seconds=30)])),
            replaces=draw(st.sampled_from([None, *PODS])),
        )
        steps.append((trigger, facts))
    return steps


class TestFoldProperties:
    @settings(max_examples=200, deadline=None)
    @given(trigger_sequences())
    def test_fold_is_deterministic(self, as_recorded: RecordFn, steps: Steps) -> None:
        events = as_recorded(run(steps, datetime(2026, 11, 26).astimezone()))
        assert fold(events) == fold(events)

    @settings(max_examples=200, deadline=None)
    @given(trigger_sequences(), st.data())
    def test_folding_a_prefix_then_the_rest_equals_folding_everything(
        self, as_recorded: RecordFn, steps: Steps, data: st.DataObject
    ) -> None:
        events = as_recorded(run(steps, datetime(2026, 11, 26).astimezone()))
        cut = data.draw(st.integers(min_value=0, max_value=len(events)))
        assert fold(events[cut:], fold(events[:cut])) == fold(events)

    @settings(max_examples=200, deadline=None)
    @given(trigger_sequences())
    def test_advancing_in_memory_agrees_with_folding_the_recorded_events(
        self, as_recorded: RecordFn, steps: Steps
    ) -> None:
        payloads = run(steps, datetime(2026, 11, 26).astimezone())
        recorded = fold(as_recorded(payloads))
        # `advance` knows no stream metadata or positions; everything else must match.
        in_memory = replace(
            advance(AdapterState(), payloads, at=recorded.phase_since or datetime(2026, 11, 26).astimezone()),
            stream_id=recorded.stream_id,
            namespace=recorded.namespace,
            name=recorded.name,
            position=recorded.position,
        )
        assert _shape(in_memory) == _shape(recorded)

    @settings(max_examples=500, deadline=None)
    @given(st.data())
    def test_no_sequence_of_decisions_gives_a_pod_more_than_five_attempts(self, data: st.DataObject) -> None:
        """Walk the machines through accepted triggers only, so that every step moves something."""
        clock = datetime(2026, 11, 26).astimezone()
        state = advance(AdapterState(), [SPEC], at=clock)
        most = 0
        for _ in range(data.draw(st.integers(min_value=0, max_value=40), label="steps")):
            clock += timedelta(seconds=data.draw(st.integers(min_value=0, max_value=400)))
            pod = data.draw(st.sampled_from(PODS[:2]))
            placement = state.placement(pod)
            options = [t for t in PlacementTrigger if accepts(placement.state if placement else NEW, t)]
            # The retry cycle is over-represented, or sequences would rarely reach the limit at all.
            options += [t for t in options if t in RETRY_CYCLE] * 6
            options += [t for t in PhaseTrigger if accepts(state.phase or NEW, t)]
            trigger = data.draw(st.sampled_from(options))
            retriable = data.draw(st.sampled_from([True, True, True, False]))
            facts = Facts(now=clock, pod=pod, retriable=retriable, error="boom")
            # A trigger the table accepts always leads somewhere: each group of guarded edges ends unguarded.
            state = advance(state, decide(state, trigger, facts), at=clock)
            for placement in state.placements:
                assert 0 <= placement.attempts <= BackoffPolicy().max_attempts, placement
                most = max(most, placement.attempts)
        # Steer the search towards sequences that push a pod to the limit, where a bug would show.
        target(float(most))
        event(f"most attempts on one pod: {most}")


def _shape(state: AdapterState) -> tuple[object, ...]:
    """What a fold decides, without the times (the two paths stamp different instants)."""
    return (
        state.version,
        state.phase,
        state.phase_trigger,
        state.spec,
        tuple((p.pod, p.state, p.attempts, p.last_error, p.artifact_url) for p in state.placements),
        state.load_failures,
        state.pod_switches,
    )


class TestWhatTheFoldKnows:
    def test_an_empty_stream_is_a_new_adapter(self) -> None:
        state = fold([])
        assert (state.version, state.phase, state.placements, state.generation) == (0, None, (), 0)

    def test_a_full_lifecycle_with_a_retry_and_a_pod_switch(self, as_recorded: RecordFn, epoch: datetime) -> None:
        later = epoch + timedelta(seconds=1)
        steps: Steps = [
            (PhaseTrigger.CREATED, Facts(now=epoch)),
            (PlacementTrigger.ASSIGN, Facts(now=epoch, pod="pod-a", policy="least-adapters")),
            (PhaseTrigger.PODS_SELECTED, Facts(now=epoch)),
            (PlacementTrigger.START_LOAD, Facts(now=epoch, pod="pod-a")),
            (PhaseTrigger.LOAD_STARTED, Facts(now=epoch)),
            (PlacementTrigger.LOAD_FAILED, Facts(now=epoch, pod="pod-a", error="401 Unauthorized")),
            (PlacementTrigger.ASSIGN, Facts(now=later, pod="pod-b", replaces="pod-a", reason="MaxRetriesExceeded")),
            (PlacementTrigger.START_LOAD, Facts(now=later, pod="pod-b")),
            (PlacementTrigger.LOAD_FAILED, Facts(now=later, pod="pod-b", error="connection refused", retriable=True)),
            (PlacementTrigger.RETRY_DUE, Facts(now=later + timedelta(seconds=5), pod="pod-b")),
            (PlacementTrigger.LOAD_SUCCEEDED, Facts(now=later + timedelta(seconds=6), pod="pod-b", duration_ms=40)),
            (PhaseTrigger.LOAD_VERIFIED, Facts(now=later)),
        ]
        payloads = run(steps, epoch)
        payloads.append(ServiceBound(service="qwen-code-lora", endpoints=("10.0.0.2",)))
        state = fold(as_recorded(payloads))
        assert state.phase is Phase.BOUND
        assert state.instances == ("pod-b",)
        assert state.selected_pods == ("pod-b",)
        assert state.endpoints == ("10.0.0.2",)
        a, b = state.placements
        assert (a.pod, a.state, a.attempts, a.last_error) == ("pod-a", PlacementState.EXHAUSTED, 1, "401 Unauthorized")
        assert (b.pod, b.state, b.attempts, b.last_error) == ("pod-b", PlacementState.LOADED, 0, None)
        assert (state.load_failures, state.pod_switches) == (2, 1)
        assert state.version == len(payloads)

    def test_a_backoff_placement_knows_when_its_retry_is_due(self, as_recorded: RecordFn, epoch: datetime) -> None:
        payloads = run(
            [
                (PlacementTrigger.ASSIGN, Facts(now=epoch, pod="pod-a")),
                (PlacementTrigger.START_LOAD, Facts(now=epoch, pod="pod-a")),
                (PlacementTrigger.LOAD_FAILED, Facts(now=epoch, pod="pod-a", error="timeout", retriable=True)),
            ],
            epoch,
        )
        (placement,) = fold(as_recorded(payloads)).placements
        assert placement.state is PlacementState.BACKOFF
        assert placement.next_retry_at == epoch + timedelta(seconds=5)
        assert placement.attempts == 1

    def test_an_unloaded_placement_leaves_the_state(self, as_recorded: RecordFn, epoch: datetime) -> None:
        payloads = run(
            [
                (PlacementTrigger.ASSIGN, Facts(now=epoch, pod="pod-a")),
                (PlacementTrigger.START_LOAD, Facts(now=epoch, pod="pod-a")),
                (PlacementTrigger.POD_GONE, Facts(now=epoch, pod="pod-a", reason="pod deleted")),
            ],
            epoch,
        )
        assert fold(as_recorded(payloads)).placements == ()

    def test_a_finalized_stream_says_so(self, as_recorded: RecordFn) -> None:
        assert fold(as_recorded([SPEC, Finalized()])).finalized


class TestFoldRejectsABrokenStream:
    def test_a_missing_version(self, as_recorded: RecordFn) -> None:
        first, _, third = as_recorded([SPEC, SPEC, SPEC])
        with pytest.raises(FoldError, match="expected version 2, got 3"):
            fold([first, third])

    def test_a_repeated_version(self, as_recorded: RecordFn) -> None:
        (first,) = as_recorded([SPEC])
        with pytest.raises(FoldError, match="expected version 2, got 1"):
            fold([first, first])

    def test_events_of_another_stream(self, as_recorded: RecordFn) -> None:
        (first,) = as_recorded([SPEC], stream_id="uid-1")
        _, second = as_recorded([SPEC, SPEC], stream_id="uid-2")
        with pytest.raises(FoldError, match="uid-2 folded into stream uid-1"):
            fold([first, second])

    def test_a_fact_about_a_pod_without_placement(self, as_recorded: RecordFn, epoch: datetime) -> None:
        from modeladapter.fsm.events import LoadStarted

        with pytest.raises(FoldError, match="pod 'ghost' which has no placement"):
            fold(as_recorded([LoadStarted(pod="ghost", attempt=1, artifact_url="/x")]))
