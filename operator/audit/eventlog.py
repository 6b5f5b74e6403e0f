"""Opening the event log for reading, and only for reading: the audit commands never create, migrate or append.

`open_event_log` refuses a SQLite path with no file (rather than creating one), an empty file or a database
with no event log yet, and one at another schema revision (older: run `modeladapter db upgrade`; unknown,
i.e. newer: upgrade modeladapter). It reads through `modeladapter.store.readonly`: SQLite opened read-only
without touching `-wal` or `-shm` (so a read-only directory or mount works too), PostgreSQL in read-only
transactions. Every refusal and every bad input is an `AuditError`: one line for the user, exit status 2.

The events are decoded by `AuditCodec`, which turns a row this version cannot read (not JSON, a type or schema
version from a newer modeladapter, a value of the wrong kind) into an `UnreadableEvent` naming its stream and
version, one line too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final, get_args

from pydantic import ValidationError

from modeladapter import migrations
from modeladapter.fsm.events import EVENT_TYPES, AdapterEvent, RecordedEvent
from modeladapter.store import SqlEventStore, StoreError, UnsupportedDatabase, normalize_url
from modeladapter.store.codec import Codec
from modeladapter.store.engine import is_memory_sqlite, redact_url
from modeladapter.store.errors import CorruptEvent
from modeladapter.store.readonly import (
    SQLITE_HEADER_BYTES,
    SQLITE_MAGIC,
    ReadOnlyUnavailable,
    read_only_engine,
)


class AuditError(Exception):
    """Bad input or an unusable event log or cluster: one line for the user (exit status 2)."""


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
        _check_sqlite_file(Path(normalized.database).expanduser(), empty)
    engine = read_only_engine(normalized)
    try:
        try:
            revision = await migrations.current_revision(engine)
        except ReadOnlyUnavailable as error:
            raise AuditError(f"cannot read the event log {shown} without writing to it: {error}") from None
        except Exception as error:  # whatever stops us reading is the same one line for the user
            raise AuditError(f"cannot read the event log {shown}: {first_line(error)}") from None
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
        yield SqlEventStore(engine, codec=AuditCodec())
    finally:
        await engine.dispose()


def _check_sqlite_file(path: Path, empty: AuditError) -> None:
    """Refuse, before SQLite sees it, a path with no file (SQLite would create one), an empty file or another file."""
    try:
        with path.open("rb") as file:
            header = file.read(SQLITE_HEADER_BYTES)
    except FileNotFoundError:
        raise AuditError(
            f"no event log at {path}: nothing has been recorded there (the operator and `modeladapter sandbox` "
            "create it; pass --database-url or set MODELADAPTER_DATABASE_URL to read another)"
        ) from None
    except OSError as error:
        raise AuditError(f"cannot read the event log {path}: {error.strerror or error}") from None
    if not header:
        raise empty
    if not header.startswith(SQLITE_MAGIC) or len(header) < SQLITE_HEADER_BYTES:
        raise AuditError(f"{path} is not a SQLite database, so not an event log")


# --- rows this version cannot read ------------------------------------------------------------------------------


class UnreadableEvent(StoreError):
    """A row of the log that this version cannot turn into an event; the message names its stream and version."""


NEWEST_SCHEMA_VERSIONS: Final[dict[str, int]] = {
    model.model_fields["type"].default: model.model_fields["schema_version"].default
    for model in get_args(get_args(AdapterEvent)[0])
}
"""The schema version this modeladapter writes, per event type: a larger one comes from a newer version."""


class AuditCodec(Codec):
    """The store's codec, with every row it cannot decode reported as one `UnreadableEvent`, never a traceback."""

    __slots__ = ()

    def decode(self, row: Mapping[str, Any]) -> RecordedEvent:
        where = f"stream {row.get('stream_id')} version {row.get('version')}"
        type_, schema_version = row.get("type"), row.get("schema_version")
        if type_ not in EVENT_TYPES:
            raise UnreadableEvent(
                f"{where}: a {type_!r} event, a type this modeladapter does not know (written by a newer "
                "version?); upgrade modeladapter to read this log"
            )
        newest = NEWEST_SCHEMA_VERSIONS[str(type_)]
        if isinstance(schema_version, int) and schema_version > newest:
            raise UnreadableEvent(
                f"{where}: {type_} schema version {schema_version} is newer than this modeladapter reads "
                f"({newest}); upgrade modeladapter to read this log"
            )
        try:
            return Codec.decode(self, row)
        except CorruptEvent as error:
            raise UnreadableEvent(f"{where}: {error.detail}") from None
        except (ValueError, TypeError, ArithmeticError) as error:
            raise UnreadableEvent(f"{where}: {describe(error)}") from None


def describe(error: BaseException) -> str:
    """An exception as one line: a validation error's problems, field by field; else its first line."""
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or '<value>'}: {problem['msg']}"
            for problem in error.errors(include_url=False)
        )
    return first_line(error)


def first_line(error: BaseException) -> str:
    detail = getattr(error, "orig", None) or error
    text = str(detail).strip().splitlines()
    return text[0] if text else type(detail).__name__
