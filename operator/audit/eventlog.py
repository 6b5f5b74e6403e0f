"""Opening the event log for reading, and only for reading: the audit commands never create, migrate or append.

`open_event_log` refuses a SQLite path with no file (rather than creating one), an empty file or a database
with no event log yet, and one at another schema revision (older: run `modeladapter db upgrade`; unknown,
i.e. newer: upgrade modeladapter), and it opens a SQLite file that is not in WAL mode read-only (the log's own
engine would switch it to WAL, a write). Every refusal and every bad input is an `AuditError`: one line for
the user, exit status 2.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from modeladapter import migrations
from modeladapter.store import SqlEventStore, UnsupportedDatabase, create_engine, normalize_url
from modeladapter.store.engine import SQLITE_BUSY_TIMEOUT_MS, is_memory_sqlite, redact_url

if TYPE_CHECKING:
    pass


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
        engine = _sqlite_reader(Path(normalized.database).expanduser(), normalized, empty)
    else:
        engine = create_engine(normalized)
    try:
        try:
            revision = await migrations.current_revision(engine)
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
    read_only = URL.create(
        "sqlite+aiosqlite", database=f"file:{quote(str(path.resolve()))}", query={"mode": "ro", "uri": "true"}
    )
    return create_async_engine(read_only, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})


def first_line(error: BaseException) -> str:
    detail = getattr(error, "orig", None) or error
    text = str(detail).strip().splitlines()
    return text[0] if text else type(detail).__name__
