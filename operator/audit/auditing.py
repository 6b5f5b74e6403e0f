"""What the audit commands compute from the log: history, events, replay, stuck and stats, as plain data.

These serve the on-call engineer ("why is my adapter stuck in Loading?") and the auditor ("what was loaded
where, when, by which decision?"). Everything comes from the event log (opened read-only by
`modeladapter.operator.audit.eventlog`) through `modeladapter.store.queries`;
`modeladapter.operator.audit.rendering` and `modeladapter.operator.audit.reports` turn the results into
tables, JSON or YAML. `verify`, which reads the cluster too, is `modeladapter.operator.audit.verifying`.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from modeladapter.fsm.events import PhaseChanged, RecordedEvent
from modeladapter.fsm.phases import Phase
from modeladapter.fsm.state import AdapterState, FoldError, fold
from modeladapter.store import SqlEventStore, StreamInfo
from modeladapter.store.queries import (
    DurationSummary,
    EventFilter,
    StuckAdapter,
    adapter_names,
    all_phase_transitions,
    current_phase_counts,
    event_counts,
    find_events,
    phase_durations,
    stream_prefix,
    stuck_adapters,
    timeline,
)

if TYPE_CHECKING:
    pass

from modeladapter.operator.audit.eventlog import AuditError
from modeladapter.operator.audit.integrity import check_streams


async def incarnations_of(store: SqlEventStore, *, namespace: str, name: str) -> list[StreamInfo]:
    """Every stream of namespace/name, oldest first; an `AuditError` naming nearby adapters if there is none."""
    found = await store.streams(namespace=namespace, name=name)
    if found:
        return found
    raise AuditError(await unknown_adapter(store, namespace=namespace, name=name))


async def unknown_adapter(store: SqlEventStore, *, namespace: str, name: str) -> str:
    known = await adapter_names(store)
    here = [n for ns, n in known if ns == namespace]
    message = f"no ModelAdapter {namespace}/{name} in the event log"
    close = difflib.get_close_matches(name, here, n=5, cutoff=0.6)
    if close:
        message += f"; nearby names in {namespace}: {', '.join(close)}"
    elsewhere = [ns for ns, n in known if n == name and ns != namespace]
    if elsewhere:
        message += f"; {name} exists in namespace {', '.join(elsewhere)} (use -n)"
    if not here:
        message += f"; the log has no adapters in namespace {namespace}"
    elif not close:
        message += f" (it has {len(here)} there: {', '.join(here[:8])}{' ...' if len(here) > 8 else ''})"
    return message


# --- history --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PhaseStay:
    """One phase decision and the time the adapter then spent in the phase it entered."""

    event: RecordedEvent
    payload: PhaseChanged
    duration: timedelta
    ongoing: bool
    """The adapter is still in this phase: `duration` runs up to now."""


@dataclass(frozen=True, slots=True)
class Incarnation:
    """One ModelAdapter uid of a name: its phase stays with the facts that explain them, in log order."""

    stream: StreamInfo
    entries: list[PhaseStay | RecordedEvent]


@dataclass(frozen=True, slots=True)
class History:
    namespace: str
    name: str
    now: datetime
    incarnations: list[Incarnation]


async def history(store: SqlEventStore, *, namespace: str, name: str, now: datetime, uid: str | None = None) -> History:
    """The phase timeline of namespace/name, every incarnation (or the one `uid`), oldest first."""
    await incarnations_of(store, namespace=namespace, name=name)
    await check_streams(store, namespace=namespace, name=name)
    streams = await timeline(store, namespace=namespace, name=name)
    if uid is not None:
        streams = [(s, e) for s, e in streams if s.stream_id == uid]
        if not streams:
            raise AuditError(await _unknown_uid(store, namespace=namespace, name=name, uid=uid))
    return History(namespace, name, now, [_incarnation(stream, found, now) for stream, found in streams])


def _incarnation(stream: StreamInfo, found: Sequence[RecordedEvent], now: datetime) -> Incarnation:
    decisions = [e for e in found if isinstance(e.payload, PhaseChanged)]
    left_at = {a.position: b.recorded_at for a, b in zip(decisions, decisions[1:], strict=False)}
    entries: list[PhaseStay | RecordedEvent] = []
    for event in found:
        payload = event.payload
        if not isinstance(payload, PhaseChanged):
            entries.append(event)
            continue
        ended = left_at.get(event.position) or stream.finalized_at
        entries.append(PhaseStay(event, payload, (ended or now) - event.recorded_at, ongoing=ended is None))
    return Incarnation(stream, entries)


async def _unknown_uid(store: SqlEventStore, *, namespace: str, name: str, uid: str) -> str:
    uids = [s.stream_id for s in await store.streams(namespace=namespace, name=name)]
    return f"{namespace}/{name} has no incarnation with uid {uid}; its uids: {', '.join(uids)}"


# --- events ---------------------------------------------------------------------------------------------------


async def events(store: SqlEventStore, selection: EventFilter, *, limit: int | None) -> list[RecordedEvent]:
    """The selected events in log order (the newest `limit` of them); an unknown `--adapter` is an error."""
    await check_selection(store, selection)
    return await find_events(store, selection, limit=limit)


async def check_selection(store: SqlEventStore, selection: EventFilter) -> None:
    """An unknown `--adapter`, and a stream the selection reads that cannot be told in full, are errors."""
    if selection.name is not None and selection.namespace is not None:
        await incarnations_of(store, namespace=selection.namespace, name=selection.name)
    await check_streams(store, namespace=selection.namespace, name=selection.name)


# --- replay ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Replay:
    namespace: str
    name: str
    stream: StreamInfo
    at: datetime
    state: AdapterState
    steps: list[tuple[RecordedEvent, AdapterState]] = field(default_factory=list)
    """With `step`: each event of the prefix and the state right after it."""


async def replay(
    store: SqlEventStore,
    *,
    namespace: str,
    name: str,
    at: datetime,
    uid: str | None = None,
    step: bool = False,
) -> Replay:
    """The state of namespace/name as of `at`: the fold of what its stream had recorded by then.

    Without `uid`, the incarnation is the newest one created at or before `at` (after a deletion, that is
    the deleted one, shown finalized, until the name was re-created).
    """
    incarnations = await incarnations_of(store, namespace=namespace, name=name)
    if uid is not None:
        chosen = [s for s in incarnations if s.stream_id == uid]
        if not chosen:
            raise AuditError(await _unknown_uid(store, namespace=namespace, name=name, uid=uid))
        stream = chosen[0]
    else:
        existing = [s for s in incarnations if s.created_at <= at]
        if not existing:
            raise _not_yet(namespace, name, at, incarnations[0].created_at)
        stream = existing[-1]
    await check_streams(store, stream_id=stream.stream_id)
    prefix = await stream_prefix(store, stream.stream_id, at=at)
    if not prefix:
        raise _not_yet(namespace, name, at, stream.created_at)
    steps: list[tuple[RecordedEvent, AdapterState]] = []
    state = AdapterState()
    try:
        if not step:
            return Replay(namespace, name, stream, at, fold(prefix))
        for event in prefix:
            state = fold([event], state)
            steps.append((event, state))
    except FoldError as error:  # events that no operator could have recorded: a damaged log
        raise AuditError(f"cannot replay {namespace}/{name}: its events do not add up: {error}") from None
    return Replay(namespace, name, stream, at, state, steps)


def _not_yet(namespace: str, name: str, at: datetime, first: datetime) -> AuditError:
    return AuditError(
        f"{namespace}/{name} did not exist yet at {_iso(at)}: its first event was recorded at {_iso(first)}"
    )


def _iso(moment: datetime) -> str:
    # isoformat, not strftime: strftime writes the year 1 as "1", not "0001".
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


async def stuck(
    store: SqlEventStore, *, longer_than: timedelta, namespace: str | None, now: datetime
) -> list[StuckAdapter]:
    await check_streams(store, namespace=namespace)
    return await stuck_adapters(store, longer_than=longer_than, now=now, namespace=namespace)


@dataclass(frozen=True, slots=True)
class AdapterCounts:
    namespace: str
    name: str
    retries: int
    """Failed load attempts (`LoadFailed`), every incarnation of the name."""
    pod_switches: int
    pod_losses: int


@dataclass(frozen=True, slots=True)
class Stats:
    namespace: str | None
    time_in_phase: dict[Phase, DurationSummary]
    ongoing: Counter[Phase]
    adapters: list[AdapterCounts]
    current_phases: dict[str, int]

    @property
    def totals(self) -> AdapterCounts:
        return AdapterCounts(
            self.namespace or "*",
            "*",
            sum(a.retries for a in self.adapters),
            sum(a.pod_switches for a in self.adapters),
            sum(a.pod_losses for a in self.adapters),
        )


async def stats(store: SqlEventStore, *, namespace: str | None) -> Stats:
    await check_streams(store, namespace=namespace)
    transitions = await all_phase_transitions(store, namespace=namespace)
    ended = {s.stream_id: s.finalized_at for s in await store.streams(namespace=namespace)}
    summaries, ongoing = phase_durations(transitions, finalized_at=ended)
    counts = await event_counts(store, types=("LoadFailed", "PodSwitched", "PodLost"), namespace=namespace)
    adapters = [
        AdapterCounts(ns, name, c["LoadFailed"], c["PodSwitched"], c["PodLost"])
        for (ns, name) in await adapter_names(store, namespace=namespace)
        for c in [counts.get((ns, name), Counter())]
    ]
    ordered = {p: summaries[p] for p in Phase if p in summaries}
    return Stats(namespace, ordered, ongoing, adapters, await current_phase_counts(store, namespace=namespace))
