"""What the audit commands compute: history, events, replay, verify, stuck and stats, as plain data. Read-only.

These serve the on-call engineer ("why is my adapter stuck in Loading?") and the auditor ("what was loaded
where, when, by which decision?"). Everything comes from the event log through `modeladapter.store.queries`;
`modeladapter.operator.audit.rendering` turns the results into tables, JSON or YAML.

Nothing here writes. `open_event_log` never creates, migrates or appends: it refuses a SQLite path with no
file (rather than creating one), an empty file or a database with no event log yet, and one at another schema
revision (older: run `modeladapter db upgrade`; unknown, i.e. newer: upgrade modeladapter), and it opens a
SQLite file that is not in WAL mode read-only (the log's own engine would switch it to WAL, a write).
Every refusal and every bad input is an `AuditError`: one line for the user, exit status 2.

`verify` is the one command that also reads the cluster. It compares the fold of each live stream with the
ModelAdapter's `status`, through the same `project_status` the operator writes it with. The operator appends
first and patches `status` right after, so a verify racing an active operator can catch the two between
those steps: it reports what it saw, and marks a drift whose stream moved on during the check, instead of
retrying until the drift goes away.
"""

from __future__ import annotations

import difflib
import os
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from modeladapter import migrations
from modeladapter.fsm.events import PhaseChanged, RecordedEvent
from modeladapter.fsm.phases import Phase
from modeladapter.fsm.state import AdapterState, fold
from modeladapter.operator.api.status import project_status
from modeladapter.store import SqlEventStore, StreamInfo, UnsupportedDatabase, create_engine, normalize_url
from modeladapter.store.engine import SQLITE_BUSY_TIMEOUT_MS, is_memory_sqlite, redact_url
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
    from modeladapter.operator.kube.client import Kube, Raw

SANDBOX_KUBECONFIG: Final = Path(".modeladapter") / "kubeconfig"
"""Where `modeladapter sandbox` writes its kubeconfig (relative to the directory it runs in)."""


class AuditError(Exception):
    """Bad input or an unusable event log or cluster: one line for the user (exit status 2)."""


# --- the event log --------------------------------------------------------------------------------------------


@asynccontextmanager
async def open_event_log(url: str) -> AsyncIterator[SqlEventStore]:
    """The event log at `url`, checked to exist and to be at this version's schema; never created or migrated."""
    try:
        normalized = normalize_url(url)
    except UnsupportedDatabase as error:
        raise AuditError(str(error)) from None
    shown = redact_url(url)
    empty = AuditError(
        f"{shown} holds no event log yet (no tables, no schema revision); the operator creates it on "
        f"start, or create an empty one with `modeladapter db upgrade --database-url {shown}`"
    )
    if normalized.get_backend_name() == "sqlite" and not is_memory_sqlite(normalized):
        assert normalized.database is not None
        engine = _sqlite_reader(Path(normalized.database).expanduser(), normalized, empty)
    else:
        engine = create_engine(normalized)
    try:
        try:
            revision = await migrations.current_revision(engine)
        except Exception as error:  # whatever stops us reading is the same one line for the user
            raise AuditError(f"cannot read the event log {shown}: {_first_line(error)}") from None
        if revision is None:
            raise empty
        head = migrations.head_revision()
        if revision not in migrations.known_revisions():
            raise AuditError(
                f"the event log {shown} is at schema revision {revision!r}, which this modeladapter does not know "
                f"(newest known: {head!r}); it was migrated by a newer version. Upgrade modeladapter."
            )
        if revision != head:
            raise AuditError(
                f"the event log {shown} is at the older schema revision {revision!r} (this version reads {head!r}); "
                f"run `modeladapter db upgrade --database-url {shown}` first"
            )
        yield SqlEventStore(engine)
    finally:
        await engine.dispose()


SQLITE_MAGIC: Final = b"SQLite format 3\x00"
SQLITE_WAL: Final = 2
"""Bytes 18 and 19 of a SQLite header (the read and write versions) are 2 in WAL mode, 1 in rollback mode."""


def _sqlite_reader(path: Path, url: URL, empty: AuditError) -> AsyncEngine:
    """An engine that reads the SQLite file at `path` without creating or changing it; refusals first.

    The log's own engine (`create_engine`) would create a missing file and its directory, and switch a file
    to WAL mode (a write). The operator's logs are in WAL mode already; their engine reads them as the
    operator's other readers do (SQLite's -wal and -shm files come and go with the connections). Anything
    else (an empty file, a copy made by `sqlite3 .backup`, in rollback mode) is opened read-only.
    """
    try:
        with path.open("rb") as file:
            header = file.read(100)
    except FileNotFoundError:
        raise AuditError(
            f"no event log at {path}: nothing has been recorded there (the operator and `modeladapter sandbox` "
            "create it; pass --database-url or set MODELADAPTER_DATABASE_URL to read another)"
        ) from None
    except OSError as error:
        raise AuditError(f"cannot read the event log {path}: {error.strerror or error}") from None
    if not header:
        raise empty
    if not header.startswith(SQLITE_MAGIC) or len(header) < 100:
        raise AuditError(f"{path} is not a SQLite database, so not an event log")
    if header[18] == header[19] == SQLITE_WAL:
        return create_engine(url)
    read_only = URL.create("sqlite+aiosqlite", database=f"file:{quote(str(path.resolve()))}", query={"mode": "ro", "uri": "true"})
    return create_async_engine(read_only, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})


def _first_line(error: BaseException) -> str:
    detail = getattr(error, "orig", None) or error
    text = str(detail).strip().splitlines()
    return text[0] if text else type(detail).__name__


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


async def history(
    store: SqlEventStore, *, namespace: str, name: str, now: datetime, uid: str | None = None
) -> History:
    """The phase timeline of namespace/name, every incarnation (or the one `uid`), oldest first."""
    await incarnations_of(store, namespace=namespace, name=name)
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
    if selection.name is not None and selection.namespace is not None:
        await incarnations_of(store, namespace=selection.namespace, name=selection.name)
    return await find_events(store, selection, limit=limit)


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
    prefix = await stream_prefix(store, stream.stream_id, at=at)
    if not prefix:
        raise _not_yet(namespace, name, at, stream.created_at)
    if not step:
        return Replay(namespace, name, stream, at, fold(prefix))
    steps: list[tuple[RecordedEvent, AdapterState]] = []
    state = AdapterState()
    for event in prefix:
        state = fold([event], state)
        steps.append((event, state))
    return Replay(namespace, name, stream, at, state, steps)


def _not_yet(namespace: str, name: str, at: datetime, first: datetime) -> AuditError:
    return AuditError(
        f"{namespace}/{name} did not exist yet at {_iso(at)}: its first event was recorded at {_iso(first)}"
    )


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- verify ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Drift:
    """One field on which the log and the cluster disagree (or an adapter only one of them knows)."""

    namespace: str
    name: str
    uid: str
    field: str
    log: Any
    """What the fold of the log says the field should be (None: the log has no such adapter)."""
    cluster: Any
    """What the cluster shows (None: the cluster has no such adapter, or the field is absent)."""
    note: str = ""


@dataclass(frozen=True, slots=True)
class Verification:
    checked: int
    """Adapters compared field by field (known to both the log and the cluster)."""
    drifts: list[Drift]


VERIFIED_FIELDS: Final = ("phase", "instances", "readyReplicas", "observedGeneration", "placements")
"""The `status` fields that are a function of the log alone (candidates and desiredReplicas count pods)."""
MOVED_ON: Final = "the log moved on during the check (an operator is active); re-run verify to see if it persists"


def default_kubeconfig(environ: Mapping[str, str] | None = None) -> Path:
    """$KUBECONFIG (its first existing file), else the sandbox's ./.modeladapter/kubeconfig, else ~/.kube/config."""
    environ = os.environ if environ is None else environ
    listed = [Path(p) for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        return next((p for p in listed if p.is_file()), listed[0])
    if SANDBOX_KUBECONFIG.is_file():
        return SANDBOX_KUBECONFIG
    return Path.home() / ".kube" / "config"


@asynccontextmanager
async def connect_cluster(kubeconfig: Path, context: str | None = None) -> AsyncIterator[Kube]:
    # Only verify talks to the cluster: the Kubernetes client (a third of the start-up time) is loaded here.
    from kubernetes_asyncio import client, config

    from modeladapter.operator.kube.client import Kube

    if not kubeconfig.is_file():
        raise AuditError(f"no kubeconfig at {kubeconfig}; pass --kubeconfig or set KUBECONFIG")
    configuration = client.Configuration()
    try:
        await config.load_kube_config(
            config_file=str(kubeconfig), context=context, client_configuration=configuration
        )
    except Exception as error:  # ConfigException, malformed YAML, missing keys...: all one line for the user
        raise AuditError(f"cannot use the kubeconfig {kubeconfig}: {_first_line(error)}") from None
    kube = Kube(client.ApiClient(configuration), timeout=10.0)
    try:
        yield kube
    finally:
        await kube.close()


async def verify(store: SqlEventStore, kube: Kube, *, namespace: str | None, now: datetime) -> Verification:
    """Every live stream's fold against its ModelAdapter's `status`, and adapters only one side knows."""
    from modeladapter.operator.kube.client import MODELADAPTERS, KubeError, Unreachable

    live = [s for s in await store.streams(namespace=namespace) if s.finalized_at is None]
    recorded = await find_events(store, EventFilter(namespace=namespace))
    by_stream: dict[str, list[RecordedEvent]] = {}
    for event in recorded:
        by_stream.setdefault(event.stream_id, []).append(event)
    states = {s.stream_id: fold(by_stream.get(s.stream_id, [])) for s in live}
    try:
        adapters, _ = await kube.list(MODELADAPTERS, namespace)
    except Unreachable as error:
        raise AuditError(f"cannot reach the Kubernetes API server at {kube.api.configuration.host}: {error.message}") from None
    except KubeError as error:
        raise AuditError(f"cannot list ModelAdapters at {kube.api.configuration.host}: {error}") from None
    in_cluster = {str(a["metadata"]["uid"]): a for a in adapters}
    drifts: list[Drift] = []
    for stream in live:
        adapter = in_cluster.get(stream.stream_id)
        if adapter is None:
            drifts.append(
                Drift(stream.namespace, stream.name, stream.stream_id, "adapter", _summary(states[stream.stream_id]), None,
                      "in the log (not finalized) but not in the cluster")
            )
            continue
        drifts.extend(_compare(states[stream.stream_id], adapter, now))
    logged = {s.stream_id for s in live}
    for uid, adapter in in_cluster.items():
        metadata = adapter["metadata"]
        if uid not in logged and not _finalized_here(uid, await store.streams(namespace=metadata["namespace"], name=metadata["name"])):
            phase = (adapter.get("status") or {}).get("phase")
            drifts.append(
                Drift(metadata["namespace"], metadata["name"], uid, "adapter", None, f"phase {phase or '(none)'}",
                      "in the cluster but not in the log (not reconciled yet, or another event log)")
            )
    moved = await _moved_on(store, namespace, {s.stream_id: states[s.stream_id].version for s in live})
    drifts = [Drift(d.namespace, d.name, d.uid, d.field, d.log, d.cluster, d.note or MOVED_ON) if d.uid in moved else d
              for d in drifts]
    checked = sum(1 for s in live if s.stream_id in in_cluster)
    return Verification(checked, sorted(drifts, key=lambda d: (d.namespace, d.name, d.uid, d.field)))


def _finalized_here(uid: str, streams: Sequence[StreamInfo]) -> bool:
    # A finalized stream whose object is still there: the finalizer was removed a moment ago, the object
    # is on its way out; that is not a drift.
    return any(s.stream_id == uid and s.finalized_at is not None for s in streams)


async def _moved_on(store: SqlEventStore, namespace: str | None, versions: Mapping[str, int]) -> set[str]:
    """Streams whose version is no longer the one that was folded."""
    return {s.stream_id for s in await store.streams(namespace=namespace) if s.stream_id in versions and s.version != versions[s.stream_id]}


def _summary(state: AdapterState) -> str:
    return f"phase {state.phase.value if state.phase else '(none)'}, version {state.version}"


def _compare(state: AdapterState, adapter: Raw, now: datetime) -> list[Drift]:
    metadata = adapter["metadata"]
    namespace, name, uid = str(metadata["namespace"]), str(metadata["name"]), str(metadata["uid"])
    status: Mapping[str, Any] = adapter.get("status") or {}
    wanted = project_status(
        state,
        namespace=namespace,
        name=name,
        generation=state.generation,
        candidates=int(status.get("candidates") or 0),
        desired=int(status.get("desiredReplicas") or 0),
        current=status,
        now=now,
    )
    drifts = [
        Drift(namespace, name, uid, key, wanted[key], status.get(key))
        for key in VERIFIED_FIELDS
        if wanted[key] != status.get(key)
    ]
    shown = {str(c.get("type")): c for c in status.get("conditions") or [] if isinstance(c, Mapping)}
    for condition in wanted["conditions"]:
        kind = str(condition["type"])
        expected = _verdict(condition)
        actual = _verdict(shown[kind]) if kind in shown else None
        if expected != actual:
            drifts.append(Drift(namespace, name, uid, f"conditions[{kind}]", expected, actual))
    return drifts


def _verdict(condition: Mapping[str, Any]) -> dict[str, Any]:
    """What a condition says; its times are bookkeeping, not part of the verdict."""
    return {key: condition.get(key) for key in ("status", "reason", "message")}


# --- stuck and stats ------------------------------------------------------------------------------------------


async def stuck(
    store: SqlEventStore, *, longer_than: timedelta, namespace: str | None, now: datetime
) -> list[StuckAdapter]:
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
