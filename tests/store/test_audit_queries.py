"""The questions the audit commands ask the log (`store/queries.py`), answered the same on both backends."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import datetime, timedelta

import pytest

from modeladapter.fsm.events import (
    AdapterEvent,
    Finalized,
    LoadFailed,
    LoadStarted,
    PhaseChanged,
    PodLost,
    PodSwitched,
    SpecObserved,
    stamp,
)
from modeladapter.fsm.phases import Phase
from modeladapter.store import SqlEventStore
from modeladapter.store.queries import (
    TIMELINE_EVENT_TYPES,
    EventFilter,
    PhaseTransition,
    adapter_names,
    all_phase_transitions,
    current_phase_counts,
    event_counts,
    find_events,
    follow_events,
    last_position,
    percentile,
    phase_durations,
    stream_prefix,
    stuck_adapters,
    timeline,
)


def moved(from_phase: Phase | None, to_phase: Phase, trigger: str = "t") -> PhaseChanged:
    return PhaseChanged(from_phase=from_phase, to_phase=to_phase, trigger=trigger, reason="R", message="M")


def failed(pod: str, attempt: int = 1) -> LoadFailed:
    return LoadFailed(pod=pod, attempt=attempt, error="503", retriable=True, retry_at=None)


class Log:
    """Appends each event at its own time, one batch per event, as successive reconciles would."""

    def __init__(self, store: SqlEventStore, epoch: datetime) -> None:
        self.store = store
        self.epoch = epoch

    def at(self, seconds: float) -> datetime:
        return self.epoch + timedelta(seconds=seconds)

    async def write(self, name: str, timeline: list[tuple[float, AdapterEvent]], *, namespace: str = "default",
                    stream: str | None = None) -> str:  # fmt: skip
        stream = stream or str(uuid.uuid4())
        version = await self.store.last_version(stream)
        for offset, (seconds, payload) in enumerate(timeline):
            await self.store.append(stream, stamp([payload], at=self.at(seconds)), expected_version=version + offset,
                                    namespace=namespace, name=name)  # fmt: skip
        return stream


@pytest.fixture
def log(store: SqlEventStore, epoch: datetime) -> Log:
    return Log(store, epoch)


# --- selecting events -----------------------------------------------------------------------------------------


async def test_a_filter_narrows_by_namespace_name_stream_and_type(store: SqlEventStore, log: Log) -> None:
    first = await log.write("a", [(0, moved(None, Phase.PENDING)), (1, failed("p1"))])
    await log.write("a", [(2, moved(None, Phase.PENDING))], namespace="other")
    second = await log.write("b", [(3, moved(None, Phase.PENDING)), (4, failed("p2"))])
    everything = await find_events(store, EventFilter())
    assert [e.position for e in everything] == [1, 2, 3, 4, 5]

    async def names(selection: EventFilter) -> list[tuple[str, str, str]]:
        return [(e.namespace, e.name, e.payload.type) for e in await find_events(store, selection)]

    assert await names(EventFilter(namespace="default")) == [
        ("default", "a", "PhaseChanged"), ("default", "a", "LoadFailed"),
        ("default", "b", "PhaseChanged"), ("default", "b", "LoadFailed"),
    ]  # fmt: skip
    assert await names(EventFilter(name="a")) == [
        ("default", "a", "PhaseChanged"), ("default", "a", "LoadFailed"), ("other", "a", "PhaseChanged"),
    ]  # fmt: skip
    assert [e.stream_id for e in await find_events(store, EventFilter(stream_id=second))] == [second, second]
    assert [e.stream_id for e in await find_events(store, EventFilter(types=("LoadFailed",)))] == [first, second]
    assert await find_events(store, EventFilter(namespace="nowhere")) == []


async def test_a_pod_matches_the_pod_field_or_either_side_of_a_switch(store: SqlEventStore, log: Log) -> None:
    await log.write("a", [
        (0, LoadStarted(pod="p1", attempt=1, artifact_url="s3://x")),
        (1, PodSwitched(from_pod="p1", to_pod="p2", reason="MaxRetriesExceeded")),
        (2, PodSwitched(from_pod="p3", to_pod="p1", reason="MaxRetriesExceeded")),
        (3, PodLost(pod="p2", reason="pod deleted")),
        (4, moved(None, Phase.PENDING)),
    ])  # fmt: skip
    assert [e.position for e in await find_events(store, EventFilter(pod="p1"))] == [1, 2, 3]
    assert [e.position for e in await find_events(store, EventFilter(pod="p2"))] == [2, 4]
    assert [e.position for e in await find_events(store, EventFilter(pod="p"))] == [], "whole names only"


async def test_since_and_until_are_inclusive_and_follow_the_recording_time(store: SqlEventStore, log: Log) -> None:
    await log.write(
        "a", [(0, moved(None, Phase.PENDING)), (10, failed("p")), (20, failed("p", 2)), (30, failed("p", 3))]
    )
    window = EventFilter(since=log.at(10), until=log.at(20))
    assert [e.version for e in await find_events(store, window)] == [2, 3]
    assert [e.version for e in await find_events(store, EventFilter(since=log.at(10.000001)))] == [3, 4]
    assert [e.version for e in await find_events(store, EventFilter(until=log.at(-1)))] == []


async def test_a_limit_keeps_the_newest_events_in_log_order(store: SqlEventStore, log: Log) -> None:
    await log.write("a", [(n, failed("p", n + 1)) for n in range(5)])
    assert [e.position for e in await find_events(store, EventFilter(), limit=2)] == [4, 5]
    assert [e.position for e in await find_events(store, EventFilter(), limit=50)] == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError):
        await find_events(store, EventFilter(), limit=0)


async def test_positions_bound_a_selection_and_follow_tails_it(store: SqlEventStore, log: Log) -> None:
    assert await last_position(store) == 0
    await log.write("a", [(0, moved(None, Phase.PENDING)), (1, failed("p"))])
    assert await last_position(store) == 2
    assert [e.position for e in await find_events(store, EventFilter(after_position=1, upto_position=2))] == [2]
    tail = follow_events(store, EventFilter(types=("LoadFailed",)), after_position=2, poll_interval=0.01)
    try:
        waiting = asyncio.ensure_future(anext(tail))
        await asyncio.sleep(0.05)
        assert not waiting.done(), "nothing new: no batch"
        await log.write("b", [(2, moved(None, Phase.PENDING)), (3, failed("q"))])
        batch = await asyncio.wait_for(waiting, 5)
        assert [(e.name, e.payload.type, e.position) for e in batch] == [("b", "LoadFailed", 4)]
        await log.write("c", [(4, failed("r")), (5, failed("r", 2))])
        assert [e.position for e in await asyncio.wait_for(anext(tail), 5)] == [5, 6]
    finally:
        await tail.aclose()


# --- replay ---------------------------------------------------------------------------------------------------


async def test_the_prefix_at_a_moment_is_what_the_log_knew_then(store: SqlEventStore, log: Log) -> None:
    stream = await log.write("a", [(0, moved(None, Phase.PENDING)), (10, failed("p")), (20, failed("p", 2))])
    assert [e.version for e in await stream_prefix(store, stream, at=log.at(-1))] == []
    assert [e.version for e in await stream_prefix(store, stream, at=log.at(10))] == [1, 2]
    assert [e.version for e in await stream_prefix(store, stream, at=log.at(15))] == [1, 2]
    assert [e.version for e in await stream_prefix(store, stream, at=log.at(99))] == [1, 2, 3]


async def test_the_prefix_stops_at_the_first_later_event_even_if_a_clock_went_back(
    store: SqlEventStore, log: Log
) -> None:
    # v3 was stamped by an operator whose clock was behind (a failover): it was appended after v2, so it
    # cannot have been known at a moment before v2 was.
    stream = await log.write("a", [(0, moved(None, Phase.PENDING)), (10, failed("p")), (5, failed("p", 2))])
    assert [e.version for e in await stream_prefix(store, stream, at=log.at(6))] == [1]
    assert [e.version for e in await stream_prefix(store, stream, at=log.at(10))] == [1, 2, 3]


async def test_a_timeline_is_each_incarnation_with_its_decisions_and_the_facts_that_explain_them(
    store: SqlEventStore, log: Log
) -> None:
    spec = SpecObserved(generation=1, artifact_url="s3://x", replicas=1, scheduler_name="default", pod_selector="a=b")
    first = await log.write("a", [(0, spec), (0, moved(None, Phase.PENDING)), (1, failed("p")), (2, Finalized())])
    second = await log.write("a", [(3, moved(None, Phase.PENDING)), (4, PodLost(pod="p", reason="pod deleted"))])
    await log.write("b", [(0, moved(None, Phase.PENDING))])
    found = await timeline(store, namespace="default", name="a")
    assert [(s.stream_id, [e.payload.type for e in events]) for s, events in found] == [
        (first, ["PhaseChanged", "LoadFailed"]),
        (second, ["PhaseChanged", "PodLost"]),
    ]
    assert {"SpecObserved", "Finalized"}.isdisjoint(TIMELINE_EVENT_TYPES)
    assert await timeline(store, namespace="default", name="nobody") == []


# --- aggregates -----------------------------------------------------------------------------------------------


async def test_names_and_counts_span_every_incarnation_of_a_name(store: SqlEventStore, log: Log) -> None:
    await log.write("a", [(0, failed("p")), (1, failed("p", 2)), (2, Finalized())])
    await log.write("a", [(3, failed("q")), (4, PodSwitched(from_pod="q", to_pod="r", reason="x"))])
    await log.write("b", [(0, PodLost(pod="r", reason="pod deleted"))], namespace="team-b")
    assert await adapter_names(store) == [("default", "a"), ("team-b", "b")]
    assert await adapter_names(store, namespace="team-b") == [("team-b", "b")]
    counts = await event_counts(store, types=("LoadFailed", "PodSwitched", "PodLost"))
    assert counts == {
        ("default", "a"): Counter({"LoadFailed": 3, "PodSwitched": 1}),
        ("team-b", "b"): Counter({"PodLost": 1}),
    }
    assert await event_counts(store, types=("LoadFailed",), namespace="team-b") == {}


async def test_live_adapters_are_counted_by_current_phase(store: SqlEventStore, log: Log) -> None:
    await log.write("running", [(0, moved(None, Phase.PENDING)), (1, moved(Phase.PENDING, Phase.RUNNING))])
    await log.write("gone", [(0, moved(None, Phase.TERMINATING)), (1, Finalized())])
    spec = SpecObserved(generation=1, artifact_url="s3://x", replicas=1, scheduler_name="default", pod_selector="a=b")
    await log.write("undecided", [(0, spec)])
    await log.write("waiting", [(0, moved(None, Phase.PENDING))], namespace="team-b")
    assert await current_phase_counts(store) == {"Running": 1, "Pending": 2}
    assert await current_phase_counts(store, namespace="team-b") == {"Pending": 1}


async def test_stuck_adapters_can_be_narrowed_to_a_namespace(store: SqlEventStore, log: Log) -> None:
    await log.write("a", [(0, moved(None, Phase.LOADING))])
    await log.write("b", [(0, moved(None, Phase.PENDING))], namespace="team-b")
    everywhere = await stuck_adapters(store, longer_than=timedelta(seconds=1), now=log.at(60))
    assert {(s.namespace, s.name) for s in everywhere} == {("default", "a"), ("team-b", "b")}
    only = await stuck_adapters(store, longer_than=timedelta(seconds=1), now=log.at(60), namespace="team-b")
    assert [(s.namespace, s.name) for s in only] == [("team-b", "b")]


async def test_stays_are_completed_when_the_phase_is_left_or_the_stream_finalized(
    store: SqlEventStore, log: Log
) -> None:
    first = await log.write("a", [
        (0, moved(None, Phase.PENDING)), (1, moved(Phase.PENDING, Phase.LOADING)),
        (4, moved(Phase.LOADING, Phase.RUNNING)), (10, moved(Phase.RUNNING, Phase.TERMINATING)), (12, Finalized()),
    ])  # fmt: skip
    await log.write("b", [(0, moved(None, Phase.PENDING)), (2, moved(Phase.PENDING, Phase.LOADING))])
    transitions = await all_phase_transitions(store)
    streams = {s.stream_id: s.finalized_at for s in await store.streams()}
    summaries, ongoing = phase_durations(transitions, finalized_at=streams)
    assert {phase: (s.intervals, s.max.total_seconds()) for phase, s in summaries.items()} == {
        Phase.PENDING: (2, 2.0), Phase.LOADING: (1, 3.0), Phase.RUNNING: (1, 6.0), Phase.TERMINATING: (1, 2.0),
    }  # fmt: skip
    assert ongoing == Counter({Phase.LOADING: 1})
    assert streams[first] == log.at(12)
    assert [t.name for t in await all_phase_transitions(store, namespace="elsewhere")] == []


def _stay(seconds: float) -> PhaseTransition:
    return PhaseTransition("s", "default", "a", 1, 1, datetime(2026, 1, 1), None, Phase.LOADING, "t", "R", "M",
                           datetime(2026, 1, 1) + timedelta(seconds=seconds))  # fmt: skip


def test_percentiles_are_nearest_rank() -> None:
    values = [timedelta(seconds=n) for n in range(1, 11)]
    assert [percentile(values, f).total_seconds() for f in (0.5, 0.9, 0.99, 1.0)] == [5, 9, 10, 10]
    assert percentile([timedelta(seconds=7)], 0.5) == timedelta(seconds=7)
    with pytest.raises(ValueError):
        percentile([], 0.5)
    summaries, _ = phase_durations([_stay(s) for s in (3, 1, 2)], finalized_at={})
    summary = summaries[Phase.LOADING]
    assert [summary.p50, summary.p90, summary.p99, summary.max] == [timedelta(seconds=s) for s in (2, 3, 3, 3)]
