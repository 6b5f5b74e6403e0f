"""Questions about phases, answered from the log: history, time spent in each phase, adapters that are stuck.

Phase history is keyed by namespace and name, not uid, so it spans every incarnation of a ModelAdapter that
was deleted and re-created. Durations are computed per stream from consecutive `PhaseChanged` decisions; the
current phase of a live adapter is open-ended and measured up to `now`, which the caller passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select

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


async def time_in_phase(
    store: SqlEventStore, *, namespace: str, name: str, now: datetime
) -> dict[Phase, timedelta]:
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
) -> list[StuckAdapter]:
    """Live adapters that entered their current phase more than `longer_than` ago, longest first.

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
