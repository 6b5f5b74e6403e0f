"""Questions answered from the log: phase history, time in phase, stuck adapters, and what the audit commands ask.

Phase history is keyed by namespace and name, not uid, so it spans every incarnation of a ModelAdapter that
was deleted and re-created. Durations are computed per stream from consecutive `PhaseChanged` decisions; the
current phase of a live adapter is open-ended and measured up to `now`, which the caller passes.

The audit commands (`modeladapter history`, `events`, `replay`, `stuck`, `stats`) read through the functions
below: events selected by an `EventFilter` (adapter, types, pod, time window, positions) and tailed by
position, the prefix of a stream known at a moment (replay folds it), and aggregates (event counts per
adapter, adapters per current phase, time-in-phase percentiles). They only read; presentation is the
operator layer's business.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Select, and_, func, or_, select

from modeladapter.fsm.events import PhaseChanged, RecordedEvent
from modeladapter.fsm.phases import Phase
from modeladapter.store.eventstore import SqlEventStore, StreamInfo, select_events
from modeladapter.store.schema import events, streams

# Events whose text explains why an adapter is not progressing, newest first wins.
ERROR_EVENT_TYPES: Final = ("LoadFailed", "UnloadFailed", "SpecRejected", "PodLost", "AdapterMissing")


@dataclass(frozen=True, slots=True)
class PhaseTransition:
    """One `PhaseChanged` decision and how long the adapter then stayed in the phase it entered."""

    stream_id: str
    namespace: str
    name: str
    version: int
    position: int
    at: datetime
    from_phase: Phase | None
    to_phase: Phase
    trigger: str
    reason: str
    message: str
    left_at: datetime | None
    """When the adapter left `to_phase`; None while it is still there (or the stream ended in it)."""

    def time_in_phase(self, now: datetime) -> timedelta:
        return (self.left_at or now) - self.at


@dataclass(frozen=True, slots=True)
class StuckAdapter:
    stream_id: str
    namespace: str
    name: str
    phase: Phase
    since: datetime
    stuck_for: timedelta
    reason: str
    message: str
    last_error: str | None


async def phase_history(store: SqlEventStore, *, namespace: str, name: str) -> list[PhaseTransition]:
    """Every phase transition of every ModelAdapter called namespace/name, oldest first."""
    stream_ids = [s.stream_id for s in await store.streams(namespace=namespace, name=name)]
    if not stream_ids:
        return []
    query = (
        select_events()
        .where(events.c.stream_id.in_(stream_ids), events.c.type == "PhaseChanged")
        .order_by(events.c.position)
    )
    return _transitions(await store.query_events(query))


def _transitions(recorded: Sequence[RecordedEvent]) -> list[PhaseTransition]:
    """Pair each phase decision with the next one of the same stream to know when its phase was left."""
    next_at: dict[int, datetime] = {}
    last_seen: dict[str, RecordedEvent] = {}
    for event in recorded:
        previous = last_seen.get(event.stream_id)
        if previous is not None:
            next_at[previous.position] = event.recorded_at
        last_seen[event.stream_id] = event
    transitions = []
    for event in recorded:
        payload = event.payload
        assert isinstance(payload, PhaseChanged)
        transitions.append(
            PhaseTransition(
                stream_id=event.stream_id,
                namespace=event.namespace,
                name=event.name,
                version=event.version,
                position=event.position,
                at=event.recorded_at,
                from_phase=payload.from_phase,
                to_phase=payload.to_phase,
                trigger=payload.trigger,
                reason=payload.reason,
                message=payload.message,
                left_at=next_at.get(event.position),
            )
        )
    return transitions


async def time_in_phase(store: SqlEventStore, *, namespace: str, name: str, now: datetime) -> dict[Phase, timedelta]:
    """Total time namespace/name has spent in each phase, over all its incarnations, up to `now`."""
    history = await phase_history(store, namespace=namespace, name=name)
    ended = {s.stream_id: s.finalized_at for s in await store.streams(namespace=namespace, name=name)}
    totals: dict[Phase, timedelta] = {}
    for transition in history:
        until = transition.left_at or ended.get(transition.stream_id) or now
        totals[transition.to_phase] = totals.get(transition.to_phase, timedelta(0)) + (until - transition.at)
    return totals


async def stuck_adapters(
    store: SqlEventStore,
    *,
    longer_than: timedelta,
    now: datetime,
    phases: Sequence[Phase] | None = None,
    namespace: str | None = None,
) -> list[StuckAdapter]:
    """Live adapters (in `namespace`, or all) that entered their current phase more than `longer_than` ago, longest first.

    By default every phase but Running counts; Running for a long time is the goal, not a problem.
    """
    wanted = [p.value for p in (phases if phases is not None else [p for p in Phase if p is not Phase.RUNNING])]
    query = (
        select(streams)
        .where(
            streams.c.finalized_at.is_(None),
            streams.c.phase.in_(wanted),
            streams.c.phase_since < now - longer_than,
        )
        .order_by(streams.c.phase_since)
    )
    if namespace is not None:
        query = query.where(streams.c.namespace == namespace)
    async with store.engine.connect() as connection:
        rows = (await connection.execute(query)).mappings().all()
    return [await _stuck(store, StreamInfo(**row), now) for row in rows]


async def _stuck(store: SqlEventStore, stream: StreamInfo, now: datetime) -> StuckAdapter:
    assert stream.phase is not None and stream.phase_since is not None
    latest = await _latest(store, stream.stream_id, ("PhaseChanged",))
    error = await _latest(store, stream.stream_id, ERROR_EVENT_TYPES)
    decision = latest.payload if latest is not None else None
    return StuckAdapter(
        stream_id=stream.stream_id,
        namespace=stream.namespace,
        name=stream.name,
        phase=Phase(stream.phase),
        since=stream.phase_since,
        stuck_for=now - stream.phase_since,
        reason=decision.reason if isinstance(decision, PhaseChanged) else "",
        message=decision.message if isinstance(decision, PhaseChanged) else "",
        last_error=_error_text(error),
    )


async def _latest(store: SqlEventStore, stream_id: str, types: Sequence[str]) -> RecordedEvent | None:
    query = (
        select_events()
        .where(events.c.stream_id == stream_id, events.c.type.in_(list(types)))
        .order_by(events.c.version.desc())
        .limit(1)
    )
    found = await store.query_events(query)
    return found[0] if found else None


def _error_text(event: RecordedEvent | None) -> str | None:
    if event is None:
        return None
    payload = event.payload
    detail = getattr(payload, "error", None) or getattr(payload, "message", None) or getattr(payload, "reason", "")
    pod = getattr(payload, "pod", None)
    prefix = f"pod {pod}: " if pod else ""
    return f"{payload.type}: {prefix}{detail}"


# --- the audit commands' questions ------------------------------------------------------------------------------

TIMELINE_EVENT_TYPES: Final = (
    "PhaseChanged",
    "LoadFailed",
    "PlacementExhausted",
    "PodSwitched",
    "PodLost",
    "AdapterMissing",
    "SpecRejected",
    "UnloadFailed",
    "RolloutStarted",
    "InstanceUpdated",
    "RolloutHalted",
    "RolloutResumed",
    "RolloutFinished",
)
"""What a phase timeline shows: the decisions, the facts that explain why an adapter moved (or did not), and
an update's course."""


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events to read; every field narrows the selection, the defaults select everything."""

    namespace: str | None = None
    """None: every namespace."""
    name: str | None = None
    """One ModelAdapter (every incarnation of the name); None: every adapter."""
    stream_id: str | None = None
    types: tuple[str, ...] = ()
    pod: str | None = None
    """Events whose payload names this pod (`pod`, or either side of a `PodSwitched`)."""
    since: datetime | None = None
    """Recorded at or after this instant."""
    until: datetime | None = None
    """Recorded at or before this instant."""
    after_position: int = 0
    upto_position: int | None = None

    def where(self, query: Select[Any]) -> Select[Any]:
        """`query`, built on `select_events()`, narrowed to this filter."""
        if self.namespace is not None:
            query = query.where(streams.c.namespace == self.namespace)
        if self.name is not None:
            query = query.where(streams.c.name == self.name)
        if self.stream_id is not None:
            query = query.where(events.c.stream_id == self.stream_id)
        if self.types:
            query = query.where(events.c.type.in_(list(self.types)))
        if self.pod is not None:
            query = query.where(
                or_(
                    events.c.payload["pod"].as_string() == self.pod,
                    and_(
                        events.c.type == "PodSwitched",
                        or_(
                            events.c.payload["from_pod"].as_string() == self.pod,
                            events.c.payload["to_pod"].as_string() == self.pod,
                        ),
                    ),
                )
            )
        if self.since is not None:
            query = query.where(events.c.recorded_at >= self.since)
        if self.until is not None:
            query = query.where(events.c.recorded_at <= self.until)
        if self.after_position:
            query = query.where(events.c.position > self.after_position)
        if self.upto_position is not None:
            query = query.where(events.c.position <= self.upto_position)
        return query


async def find_events(store: SqlEventStore, selection: EventFilter, *, limit: int | None = None) -> list[RecordedEvent]:
    """The selected events in log order; with `limit`, only the newest `limit` of them (as `tail -n` does)."""
    query = selection.where(select_events())
    if limit is None:
        return await store.query_events(query.order_by(events.c.position))
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    newest = await store.query_events(query.order_by(events.c.position.desc()).limit(limit))
    return newest[::-1]


async def last_position(store: SqlEventStore) -> int:
    """The position of the newest event in the log; 0 for an empty log."""
    async with store.engine.connect() as connection:
        found = await connection.scalar(select(func.max(events.c.position)))
    return int(found or 0)


async def follow_events(
    store: SqlEventStore, selection: EventFilter, *, after_position: int, poll_interval: float = 0.5
) -> AsyncGenerator[list[RecordedEvent], None]:
    """Selected events appended after `after_position`, one batch per poll, forever (cancel to stop).

    Each poll first reads the newest position M, then the selected events up to M. Appends are serialised and
    commit in position order, so every event up to M is visible by then, and the next poll starts after M:
    no event is skipped or shown twice, however selective the filter is.
    """
    seen = after_position
    while True:
        newest = await last_position(store)
        if newest > seen:
            batch = await find_events(store, replace(selection, after_position=seen, upto_position=newest))
            seen = newest
            if batch:
                yield batch
        await asyncio.sleep(poll_interval)


async def adapter_names(store: SqlEventStore, *, namespace: str | None = None) -> list[tuple[str, str]]:
    """Every (namespace, name) the log has a stream for, sorted."""
    query = select(streams.c.namespace, streams.c.name).distinct().order_by(streams.c.namespace, streams.c.name)
    if namespace is not None:
        query = query.where(streams.c.namespace == namespace)
    async with store.engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [(str(row.namespace), str(row.name)) for row in rows]


async def timeline(store: SqlEventStore, *, namespace: str, name: str) -> list[tuple[StreamInfo, list[RecordedEvent]]]:
    """Each incarnation of namespace/name, oldest first, with its `TIMELINE_EVENT_TYPES` events in log order."""
    incarnations = await store.streams(namespace=namespace, name=name)
    if not incarnations:
        return []
    found = await find_events(store, EventFilter(namespace=namespace, name=name, types=TIMELINE_EVENT_TYPES))
    by_stream: dict[str, list[RecordedEvent]] = {s.stream_id: [] for s in incarnations}
    for event in found:
        by_stream[event.stream_id].append(event)
    return [(stream, by_stream[stream.stream_id]) for stream in incarnations]


async def stream_prefix(store: SqlEventStore, stream_id: str, *, at: datetime) -> list[RecordedEvent]:
    """The longest prefix of a stream recorded at or before `at`: what the log knew at that moment.

    A prefix, not a filter: the fold needs consecutive versions, and an event stamped before an earlier one
    (two operators with skewed clocks around a failover) cannot have been known before it was appended.
    """
    async with store.engine.connect() as connection:
        first_later = await connection.scalar(
            select(func.min(events.c.version)).where(events.c.stream_id == stream_id, events.c.recorded_at > at)
        )
    return await store.read(stream_id, upto=None if first_later is None else int(first_later) - 1)


async def all_phase_transitions(store: SqlEventStore, *, namespace: str | None = None) -> list[PhaseTransition]:
    """Every phase transition of every stream (in one namespace, or all), in log order."""
    return _transitions(await find_events(store, EventFilter(namespace=namespace, types=("PhaseChanged",))))


async def event_counts(
    store: SqlEventStore, *, types: Sequence[str], namespace: str | None = None
) -> dict[tuple[str, str], Counter[str]]:
    """How many events of each of `types` every adapter name (over its incarnations) has, per (namespace, name)."""
    query = (
        select(streams.c.namespace, streams.c.name, events.c.type, func.count().label("how_many"))
        .join_from(events, streams, events.c.stream_id == streams.c.stream_id)
        .where(events.c.type.in_(list(types)))
        .group_by(streams.c.namespace, streams.c.name, events.c.type)
    )
    if namespace is not None:
        query = query.where(streams.c.namespace == namespace)
    async with store.engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    counts: dict[tuple[str, str], Counter[str]] = {}
    for row in rows:
        counts.setdefault((str(row.namespace), str(row.name)), Counter())[str(row.type)] = int(row.how_many)
    return counts


async def current_phase_counts(store: SqlEventStore, *, namespace: str | None = None) -> dict[str, int]:
    """Live (not finalized) adapters per current phase; a stream with no phase decision yet counts as Pending."""
    query = (
        select(streams.c.phase, func.count().label("how_many"))
        .where(streams.c.finalized_at.is_(None))
        .group_by(streams.c.phase)
    )
    if namespace is not None:
        query = query.where(streams.c.namespace == namespace)
    async with store.engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    counts: Counter[str] = Counter()
    for row in rows:
        counts[str(row.phase or Phase.PENDING.value)] += int(row.how_many)
    return dict(counts)


@dataclass(frozen=True, slots=True)
class DurationSummary:
    """Nearest-rank percentiles of the completed stays in one phase."""

    intervals: int
    p50: timedelta
    p90: timedelta
    p99: timedelta
    max: timedelta


def percentile(ordered: Sequence[timedelta], fraction: float) -> timedelta:
    """Nearest rank: the smallest value that at least `fraction` of the values do not exceed."""
    if not ordered:
        raise ValueError("no values")
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def phase_durations(
    transitions: Sequence[PhaseTransition], *, finalized_at: Mapping[str, datetime | None]
) -> tuple[dict[Phase, DurationSummary], Counter[Phase]]:
    """Percentiles of completed stays per phase, and how many stays are still going on.

    A stay is completed when the adapter left the phase, or when its stream was finalized in it. A stay that
    is still going on has no length yet; counting it up to now would mix "how long it took" with "how long
    ago it started" (a healthy Running adapter would look like the slowest phase of all), so it is only
    counted, and `stuck` is the command for it.
    """
    lengths: dict[Phase, list[timedelta]] = {}
    ongoing: Counter[Phase] = Counter()
    for transition in transitions:
        ended = transition.left_at or finalized_at.get(transition.stream_id)
        if ended is None:
            ongoing[transition.to_phase] += 1
            continue
        lengths.setdefault(transition.to_phase, []).append(ended - transition.at)
    summaries = {}
    for phase, values in lengths.items():
        values.sort()
        summaries[phase] = DurationSummary(
            intervals=len(values),
            p50=percentile(values, 0.50),
            p90=percentile(values, 0.90),
            p99=percentile(values, 0.99),
            max=values[-1],
        )
    return summaries, ongoing
