"""Can the streams a command reads be told in full? Checked before answering, so that no answer is quietly partial.

Two things make a stream untellable:

* a version gap: its events must run 1, 2, 3 ... up to the version its stream row records. A missing one (a
  row deleted by hand, a partial restore) makes a fold fail or, worse, quietly wrong;
* an event whose type this modeladapter does not know, written by a newer version: the commands that select
  events by type would silently leave it out.

Either is refused with one line that names the stream and the first missing version, or the event and its type.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, case, func, select

from modeladapter.fsm.events import EVENT_TYPES
from modeladapter.operator.audit.eventlog import AuditError
from modeladapter.store import SqlEventStore
from modeladapter.store.schema import events, streams

KNOWN_TYPES = sorted(EVENT_TYPES)


@dataclass(frozen=True, slots=True)
class StreamProblem:
    stream_id: str
    namespace: str
    name: str
    detail: str


async def check_streams(
    store: SqlEventStore, *, namespace: str | None = None, name: str | None = None, stream_id: str | None = None
) -> None:
    """Raise an `AuditError` for the oldest stream (in `namespace`, of `name`, or `stream_id`) that has a problem."""
    problems = await stream_problems(store, namespace=namespace, name=name, stream_id=stream_id)
    if not problems:
        return
    first = problems[0]
    others = f"; {len(problems) - 1} other stream(s) cannot be read in full either" if len(problems) > 1 else ""
    raise AuditError(f"stream {first.stream_id} ({first.namespace}/{first.name}) {first.detail}{others}")


async def stream_problems(
    store: SqlEventStore, *, namespace: str | None = None, name: str | None = None, stream_id: str | None = None
) -> list[StreamProblem]:
    """Every stream in scope with a version gap or an event of an unknown type, oldest stream first."""
    query = _suspects()
    if namespace is not None:
        query = query.where(streams.c.namespace == namespace)
    if name is not None:
        query = query.where(streams.c.name == name)
    if stream_id is not None:
        query = query.where(streams.c.stream_id == stream_id)
    problems = []
    async with store.engine.connect() as connection:
        for row in (await connection.execute(query)).all():
            unknown = (
                await connection.execute(
                    select(events.c.version, events.c.type)
                    .where(events.c.stream_id == row.stream_id, events.c.type.not_in(KNOWN_TYPES))
                    .order_by(events.c.version)
                    .limit(1)
                )
            ).first()
            found = await connection.scalars(select(events.c.version).where(events.c.stream_id == row.stream_id))
            present = set(found.all())
            # SQLite keeps whatever a hand edit put in a column: a version may not even be a number.
            odd = sorted(repr(v) for v in {*present, row.last} if not isinstance(v, int))
            # At most len(present) + 1 steps, however large a damaged stream row's version is.
            missing = None if odd else next((v for v in range(1, row.last + 1) if v not in present), None)
            if unknown is not None:
                detail = (
                    f"version {unknown.version} is a {unknown.type!r} event, a type this modeladapter does not know "
                    "(written by a newer version?); upgrade modeladapter to read this log"
                )
            elif odd:
                detail = f"has an event whose version is not a whole number: {odd[0]}"
            elif missing is not None:
                detail = (
                    f"has no event at version {missing} (it should have versions 1 to {row.last}): the event log "
                    "is missing events, so this adapter's history cannot be told"
                )
            else:
                continue
            problems.append(StreamProblem(row.stream_id, row.namespace, row.name, detail))
    return problems


def _suspects() -> Select[tuple[str, str, str, int]]:
    """Streams that may have a gap or an unknown type, with the version they should run to (`last`)."""
    newest_event = func.coalesce(func.max(events.c.version), 0)
    last = case((streams.c.version > newest_event, streams.c.version), else_=newest_event)
    unknown = func.sum(case((events.c.type.not_in(KNOWN_TYPES), 1), else_=0))
    # Versions are unique per stream (the primary key), so 1..last has no gap exactly when there are `last` of
    # them and the smallest is 1 (or there are none at all).
    return (
        select(streams.c.stream_id, streams.c.namespace, streams.c.name, last.label("last"))
        .join_from(streams, events, events.c.stream_id == streams.c.stream_id, isouter=True)
        .group_by(streams.c.stream_id, streams.c.namespace, streams.c.name, streams.c.version, streams.c.created_at)
        .having((func.count(events.c.version) != last) | (func.min(events.c.version) != 1) | (unknown > 0))
        .order_by(streams.c.created_at, streams.c.stream_id)
    )
