"""The event log: append a batch to one stream, read a stream, read everything in order.

The contract (the same on SQLite and PostgreSQL, checked by one shared test suite):

* `append(stream_id, events, expected_version=n)` writes the batch as versions n+1.. in one transaction, or
  nothing at all. If the stream is not at version n, it raises `ConcurrencyConflict` with the expected and the
  actual version: the caller re-reads the stream and decides again. The primary key `(stream_id, version)`
  enforces this even against a writer that does not follow the protocol.
* Appends are serialised (SQLite's write lock; a transaction-scoped advisory lock on PostgreSQL), so global
  positions are gap-free and commit in order: a reader tailing `read_all` never skips an event. Within one
  process, batches submitted concurrently share a transaction (group commit), which is what makes serialised
  appends fast: the cost of a commit is paid once per group, not once per batch.
* `read(stream_id, after, upto)` returns versions after `after` up to `upto` inclusive, in order.
* `read_all(after_position, limit, types)` returns events of every stream in position order.
* Every event read back is validated; a malformed payload raises `CorruptEvent` naming stream and version.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Select, String, bindparam, func, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from modeladapter.fsm.events import Finalized, NewEvent, PhaseChanged, RecordedEvent
from modeladapter.store.codec import DEFAULT_CODEC, Codec
from modeladapter.store.engine import IMMEDIATE, sqlite_writer_engine
from modeladapter.store.errors import ConcurrencyConflict, DuplicateEvent, StoreError, StreamIdentityMismatch
from modeladapter.store.schema import UTCDateTime, events, streams

_WRITER_STOPPED = StoreError("the event writer stopped; this batch may or may not have been written")

# Arbitrary but fixed: the key of the PostgreSQL advisory lock that serialises appends. Another process that
# must keep appends out for a moment (a consistent backup, a test) can take it too.
APPEND_LOCK_KEY: Final = 0x6D6F64656C616461  # "modelada"


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """One ModelAdapter's stream, as the `adapter_streams` row describes it."""

    stream_id: str
    namespace: str
    name: str
    created_at: datetime
    version: int
    phase: str | None
    phase_since: datetime | None
    finalized_at: datetime | None


_GroupOutcome = tuple[list["_AppendRequest"], list[tuple["_AppendRequest", StoreError]], dict[int, list[RecordedEvent]]]
"""Accepted requests, rejected ones with their error, and what each accepted one recorded (by id)."""


@dataclass(slots=True)
class _AppendRequest:
    stream_id: str
    events: Sequence[NewEvent]
    expected_version: int
    namespace: str
    name: str
    done: asyncio.Future[list[RecordedEvent]]


_EVENT_COLUMNS: Final = tuple(column.name for column in events.columns)


def _insert_events(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """`INSERT INTO adapter_events` for many rows; on SQLite with each column's bind processor applied directly.

    The values are encoded exactly as `connection.execute(insert(events), rows)` would encode them (the same
    processors), without SQLAlchemy's per-row parameter machinery, which was a quarter of a SQLite group
    commit. PostgreSQL keeps the statement (asyncpg wants its parameters typed by SQLAlchemy).
    """
    dialect = connection.dialect
    if dialect.name != "sqlite":
        connection.execute(insert(events), rows)
        return
    # The whole chain the compiler applies (a TypeDecorator's own step, then its impl's); the public
    # `bind_processor` of a TypeDecorator stops after the first, and sqlite3 would format datetimes its own way.
    processors = [events.c[name].type._cached_bind_processor(dialect) for name in _EVENT_COLUMNS]
    statement = (
        f"INSERT INTO adapter_events ({', '.join(_EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(_EVENT_COLUMNS))})"
    )
    encoded = [
        tuple(
            process(row[name]) if process is not None else row[name]
            for name, process in zip(_EVENT_COLUMNS, processors, strict=True)
        )
        for row in rows
    ]
    connection.exec_driver_sql(statement, encoded)


class SqlEventStore:
    """The event log on a SQLAlchemy async engine (SQLite or PostgreSQL).

    Appends go through one writer task per store (group commit): every batch submitted while a transaction
    is running joins the next transaction, so concurrent reconciles share one commit instead of queueing for
    one each. Each batch is still checked and accepted or rejected on its own; a batch never half-lands.
    """

    MAX_GROUP: Final = 256

    def __init__(self, engine: AsyncEngine, *, codec: Codec = DEFAULT_CODEC) -> None:
        self.engine = engine
        self.codec = codec
        self._sqlite = engine.dialect.name == "sqlite"
        self._writer_engine = sqlite_writer_engine(engine)
        self._pending: list[_AppendRequest] = []
        self._writer: asyncio.Task[None] | None = None

    async def close(self) -> None:
        """Wait for submitted appends to finish, then release the database connections."""
        if self._writer is not None:
            # wait() rather than await: a writer cancelled at shutdown has already failed its callers.
            await asyncio.wait([self._writer])
        if self._writer_engine is not None:
            self._writer_engine.dispose()
        await self.engine.dispose()

    # --- writing --------------------------------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        new_events: Sequence[NewEvent],
        *,
        expected_version: int,
        namespace: str,
        name: str,
    ) -> list[RecordedEvent]:
        """Append `new_events` as one batch after `expected_version`; all of them or none.

        Raises `ConcurrencyConflict` if the stream is not at `expected_version`.
        """
        if expected_version < 0:
            raise ValueError(f"expected_version must be >= 0, got {expected_version}")
        if len({e.event_id for e in new_events}) != len(new_events):
            raise ValueError("a batch must not contain the same event id twice")
        if not new_events:
            actual = await self.last_version(stream_id)
            if actual != expected_version:
                raise ConcurrencyConflict(stream_id, expected_version=expected_version, actual_version=actual)
            return []
        done: asyncio.Future[list[RecordedEvent]] = asyncio.get_running_loop().create_future()
        self._pending.append(_AppendRequest(stream_id, list(new_events), expected_version, namespace, name, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending(), name="modeladapter-event-writer")
        return await done

    async def _write_pending(self) -> None:
        group: list[_AppendRequest] = []
        try:
            while self._pending:
                group, self._pending = self._pending[: self.MAX_GROUP], self._pending[self.MAX_GROUP :]
                # Shielded: if the writer is cancelled, its callers hear so at once (below) while the
                # transaction finishes or rolls back on its own; waiting on a busy database could take long.
                try:
                    await asyncio.shield(self._commit_group(group))
                except Exception as error:
                    if len(group) == 1:
                        _settle(group[0], error=await self._explain(group[0], error))
                        continue
                    # One bad batch must not sink the others: retry each on its own to isolate it.
                    for request in group:
                        try:
                            await asyncio.shield(self._commit_group([request]))
                        except Exception as single_error:
                            _settle(request, error=await self._explain(request, single_error))
        except BaseException:
            # Cancelled (shutdown) mid-write: nobody may be left waiting forever.
            for request in [*group, *self._pending]:
                _settle(request, error=_WRITER_STOPPED)
            self._pending = []
            raise

    async def _commit_group(self, group: list[_AppendRequest]) -> None:
        """Write every acceptable batch of `group` in one transaction; settle each request."""
        if self._writer_engine is not None:
            # SQLite: the whole transaction in one trip to a thread (see `sqlite_writer_engine`).
            outcome = await asyncio.to_thread(self._write_group_in_thread, group)
        else:
            async with self.engine.connect() as connection:
                if self._sqlite:
                    connection = await connection.execution_options(**{IMMEDIATE: True})
                async with connection.begin():
                    outcome = await connection.run_sync(self._write_group, group)
        accepted, rejected, recorded = outcome
        # Settle only after the commit: a failed commit must fail every accepted request.
        for request, error in rejected:
            _settle(request, error=error)
        for request in accepted:
            _settle(request, result=recorded[id(request)])

    def _write_group_in_thread(self, group: list[_AppendRequest]) -> _GroupOutcome:
        assert self._writer_engine is not None
        with self._writer_engine.connect() as connection:
            connection = connection.execution_options(**{IMMEDIATE: True})
            with connection.begin():
                return self._write_group(connection, group)

    def _write_group(self, connection: Connection, group: list[_AppendRequest]) -> _GroupOutcome:
        """The statements of one group commit, inside the caller's transaction."""
        if not self._sqlite:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK_KEY})
        known = self._stream_versions(connection, {r.stream_id for r in group})
        accepted, rejected = self._arbitrate(group, known)
        recorded: dict[int, list[RecordedEvent]] = {}
        if accepted:
            last_position = connection.execute(select(func.max(events.c.position))).scalar() or 0
            event_rows, recorded = self._rows(accepted, last_position)
            new_streams = self._new_stream_rows(accepted, known)
            if new_streams:
                connection.execute(insert(streams), new_streams)
            _insert_events(connection, event_rows)
            connection.execute(_STREAM_UPDATE, self._stream_updates(accepted))
        return accepted, rejected, recorded

    @staticmethod
    def _stream_versions(connection: Connection, stream_ids: set[str]) -> dict[str, tuple[str, str, int]]:
        rows = connection.execute(
            select(streams.c.stream_id, streams.c.namespace, streams.c.name, streams.c.version).where(
                streams.c.stream_id.in_(sorted(stream_ids))
            )
        )
        return {row.stream_id: (row.namespace, row.name, row.version) for row in rows}

    @staticmethod
    def _arbitrate(
        group: list[_AppendRequest], known: dict[str, tuple[str, str, int]]
    ) -> tuple[list[_AppendRequest], list[tuple[_AppendRequest, StoreError]]]:
        """Accept each batch whose stream is at its expected version, counting batches accepted before it."""
        versions = {stream_id: version for stream_id, (_, _, version) in known.items()}
        identities = {stream_id: (namespace, name) for stream_id, (namespace, name, _) in known.items()}
        accepted: list[_AppendRequest] = []
        rejected: list[tuple[_AppendRequest, StoreError]] = []
        for request in group:
            identity = identities.setdefault(request.stream_id, (request.namespace, request.name))
            if identity != (request.namespace, request.name):
                rejected.append(
                    (
                        request,
                        StreamIdentityMismatch(
                            request.stream_id, recorded=identity, given=(request.namespace, request.name)
                        ),
                    )
                )
                continue
            actual = versions.get(request.stream_id, 0)
            if actual != request.expected_version:
                rejected.append(
                    (
                        request,
                        ConcurrencyConflict(
                            request.stream_id, expected_version=request.expected_version, actual_version=actual
                        ),
                    )
                )
                continue
            versions[request.stream_id] = actual + len(request.events)
            accepted.append(request)
        return accepted, rejected

    def _rows(
        self, accepted: list[_AppendRequest], last_position: int
    ) -> tuple[list[dict[str, Any]], dict[int, list[RecordedEvent]]]:
        rows: list[dict[str, Any]] = []
        recorded: dict[int, list[RecordedEvent]] = {}
        position = last_position
        for request in accepted:
            batch = recorded[id(request)] = []
            for offset, event in enumerate(request.events, start=1):
                position += 1
                version = request.expected_version + offset
                type_, schema_version, payload = self.codec.encode(event)
                rows.append(
                    {
                        "stream_id": request.stream_id,
                        "version": version,
                        "position": position,
                        "event_id": event.event_id,
                        "type": type_,
                        "schema_version": schema_version,
                        "recorded_at": event.recorded_at,
                        "reconcile_id": event.reconcile_id,
                        "observed_generation": event.observed_generation,
                        "payload": payload,
                    }
                )
                batch.append(
                    RecordedEvent.model_construct(
                        stream_id=request.stream_id,
                        namespace=request.namespace,
                        name=request.name,
                        version=version,
                        position=position,
                        event_id=event.event_id,
                        recorded_at=event.recorded_at,
                        reconcile_id=event.reconcile_id,
                        observed_generation=event.observed_generation,
                        payload=event.payload,
                    )
                )
        return rows, recorded

    @staticmethod
    def _new_stream_rows(
        accepted: list[_AppendRequest], known: dict[str, tuple[str, str, int]]
    ) -> list[dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        for request in accepted:
            if request.stream_id not in known and request.stream_id not in rows:
                rows[request.stream_id] = {
                    "stream_id": request.stream_id,
                    "namespace": request.namespace,
                    "name": request.name,
                    "created_at": request.events[0].recorded_at,
                    "version": 0,
                }
        return list(rows.values())

    @staticmethod
    def _stream_updates(accepted: list[_AppendRequest]) -> list[dict[str, Any]]:
        updates = []
        for request in accepted:
            values: dict[str, Any] = {
                "b_stream_id": request.stream_id,
                "b_version": request.expected_version + len(request.events),
                "b_phase": None,
                "b_phase_since": None,
                "b_finalized_at": None,
            }
            for event in request.events:
                if isinstance(event.payload, PhaseChanged):
                    values["b_phase"] = event.payload.to_phase.value
                    values["b_phase_since"] = event.recorded_at
                elif isinstance(event.payload, Finalized):
                    values["b_finalized_at"] = event.recorded_at
            updates.append(values)
        return updates

    async def _explain(self, request: _AppendRequest, error: Exception) -> Exception:
        """Turn a failed write into the error the caller should see."""
        if not isinstance(error, IntegrityError):
            return error
        # Only a writer that bypassed the append lock, or a reused event id, gets here; the keys protect the log.
        actual = await self.last_version(request.stream_id)
        if actual != request.expected_version:
            return ConcurrencyConflict(
                request.stream_id, expected_version=request.expected_version, actual_version=actual
            )
        return DuplicateEvent(request.stream_id, str(error.orig))

    # --- reading --------------------------------------------------------------------------------------------

    async def last_version(self, stream_id: str) -> int:
        async with self.engine.connect() as connection:
            found = await connection.scalar(select(streams.c.version).where(streams.c.stream_id == stream_id))
        return int(found) if found is not None else 0

    async def read(self, stream_id: str, *, after: int = 0, upto: int | None = None) -> list[RecordedEvent]:
        """Versions `after` < v <= `upto` of one stream, oldest first."""
        query = select_events().where(events.c.stream_id == stream_id, events.c.version > after)
        if upto is not None:
            query = query.where(events.c.version <= upto)
        return await self.query_events(query.order_by(events.c.version))

    async def read_all(
        self, *, after_position: int = 0, limit: int = 500, types: Sequence[str] = ()
    ) -> list[RecordedEvent]:
        """Up to `limit` events of every stream after `after_position`, in position order."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        query = select_events().where(events.c.position > after_position)
        if types:
            query = query.where(events.c.type.in_(list(types)))
        return await self.query_events(query.order_by(events.c.position).limit(limit))

    async def streams(self, *, namespace: str | None = None, name: str | None = None) -> list[StreamInfo]:
        """Streams, oldest first; with a name, every ModelAdapter of that name, re-creations included."""
        query = select(streams).order_by(streams.c.created_at, streams.c.stream_id)
        if namespace is not None:
            query = query.where(streams.c.namespace == namespace)
        if name is not None:
            query = query.where(streams.c.name == name)
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [StreamInfo(**row) for row in rows]

    async def query_events(self, query: Select[Any]) -> list[RecordedEvent]:
        """Run a query built on `select_events()` and decode its rows."""
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [self.codec.decode(row) for row in rows]


# One statement for every stream of a group; a NULL binding keeps the column as it is.
_STREAM_UPDATE: Final = (
    update(streams)
    .where(streams.c.stream_id == bindparam("b_stream_id"))
    .values(
        version=bindparam("b_version"),
        phase=func.coalesce(bindparam("b_phase", type_=String()), streams.c.phase),
        phase_since=func.coalesce(bindparam("b_phase_since", type_=UTCDateTime()), streams.c.phase_since),
        finalized_at=func.coalesce(bindparam("b_finalized_at", type_=UTCDateTime()), streams.c.finalized_at),
    )
)


def _settle(
    request: _AppendRequest, *, result: list[RecordedEvent] | None = None, error: BaseException | None = None
) -> None:
    if request.done.done():  # the caller gave up waiting (cancelled); the outcome stands in the log anyway
        return
    if error is not None:
        request.done.set_exception(error)
    else:
        assert result is not None
        request.done.set_result(result)


def select_events() -> Select[Any]:
    """Events with their stream's namespace and name: the shape `query_events` decodes."""
    return select(events, streams.c.namespace, streams.c.name).join_from(
        events, streams, events.c.stream_id == streams.c.stream_id
    )
