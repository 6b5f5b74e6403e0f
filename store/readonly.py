"""Engines that only read the event log, for the audit commands: a log is left exactly as it was found.

SQLite. Every connection opens the file read-only through a URI; which URI depends on the files beside it, and
is decided again whenever they or the main file change (a pooled connection opened for other files is replaced
at checkout), because an operator may start or stop meanwhile and a long `events --follow` must see it:

* a `-wal` and its `-shm` (an operator is running, or stopped without checkpointing): `mode=ro&readonly_shm=1`.
  The WAL's commits are read through the existing shared-memory index, itself opened read-only: nothing is
  written to `-shm` (no read marks, no rebuilt index), nothing is checkpointed, and closing the last
  connection deletes nothing. A plain `mode=ro` connection would write to `-shm` (and create it if missing).
* no `-wal`, or an empty one with no `-shm`: every commit is in the main file. `mode=ro&immutable=1`: no
  `-wal` or `-shm` is created and no lock is taken, so a read-only directory or mount works too.
* a non-empty `-wal` without its `-shm` (a copy made without it): refused (`ReadOnlyUnavailable`), since
  reading those commits would create a `-shm`, and ignoring them would hide events.
* a file in rollback-journal mode (e.g. a `sqlite3 .backup` copy): `mode=ro`, which never writes either.

One race is left: an operator whose last connection closes (checkpoint, `-wal` and `-shm` deleted) between the
look at the files and the open makes that open fail, and SQLite's read-only open of a missing `-wal` leaves an
empty one behind; the open is then retried once, as the files now require.

Each connection is also `PRAGMA query_only`, and SQLAlchemy's transactions are plain deferred `BEGIN`s, so
that the statements of one connection read one snapshot. None of the operator's pragmas (`journal_mode=WAL`
is a write) run here.

PostgreSQL. Every transaction is read-only (`default_transaction_read_only=on` for the session), so a
statement that would write fails instead.

A payload that is not JSON (possible in SQLite only, whose JSON column is text) decodes to `NotJSON` instead
of failing the whole query; the codec then reports it with its stream and version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from modeladapter.store.codec import NotJSON
from modeladapter.store.engine import SQLITE_BUSY_TIMEOUT_MS, create_engine, is_memory_sqlite, normalize_url
from modeladapter.store.errors import StoreError

SQLITE_HEADER_BYTES: Final = 100
SQLITE_MAGIC: Final = b"SQLite format 3\x00"
SQLITE_WAL_VERSION: Final = 2
"""Bytes 18 and 19 of a SQLite header (the read and write versions) are 2 in WAL mode, 1 in rollback mode."""


class ReadOnlyUnavailable(StoreError):
    """The SQLite log cannot be read without writing next to it."""


def read_only_engine(url: str | URL) -> AsyncEngine:
    """An engine on the event log at `url` that cannot write to it (see the module's doc)."""
    normalized = normalize_url(url)
    if normalized.get_backend_name() == "sqlite":
        if is_memory_sqlite(normalized):  # a new, empty database of this process's own: nothing to protect
            return create_engine(normalized)
        assert normalized.database is not None
        return sqlite_read_only_engine(Path(normalized.database))
    # JSONB holds only JSON, so PostgreSQL needs no lenient decoding.
    return create_engine(normalized, connect_args={"server_settings": {"default_transaction_read_only": "on"}})


def sqlite_read_only_engine(path: Path) -> AsyncEngine:
    """An engine that reads the SQLite file at `path` without writing to it or next to it."""
    absolute = path.expanduser().absolute()
    # The URL keeps `mode=ro` too, so that anything derived from it (the store's writer engine) is read-only.
    url = URL.create("sqlite+aiosqlite", database=f"file:{quote(str(absolute))}", query={"mode": "ro", "uri": "true"})
    engine = create_async_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, json_deserializer=lenient_json
    )

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, record: ConnectionPoolEntry, cargs: list[Any], cparams: dict[str, Any]) -> Any:
        try:
            return _open(dialect, record, absolute, cargs[1:], cparams)
        except dialect.loaded_dbapi.OperationalError:
            # An operator started or stopped between the look at the files and the open: look again, once.
            if sqlite_read_only_uri(absolute) == record.info[_OPENED][0]:
                raise
            return _open(dialect, record, absolute, cargs[1:], cparams)

    @event.listens_for(engine.sync_engine, "checkout")
    def _still_right(_dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        # A pooled connection was opened for the files as they were: an operator that started since needs
        # `readonly_shm` to be seen, and an immutable connection must not outlive a change of the file.
        if record.info.get(_OPENED) != _look(absolute):
            raise DisconnectionError("the files of the log changed since this connection was opened")

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # the "begin" listener below starts transactions
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


_OPENED: Final = "modeladapter_read_only_opened"
"""Connection info: the URI a connection was opened with and the main file's identity then (`_look`)."""


def _look(path: Path) -> tuple[str, tuple[int, int, int]]:
    status = path.stat()
    return sqlite_read_only_uri(path), (status.st_ino, status.st_size, status.st_mtime_ns)


def _open(dialect: Any, record: ConnectionPoolEntry, path: Path, cargs: list[Any], cparams: dict[str, Any]) -> Any:
    """Open `path` as the files beside it now require, and read its header at once: a race shows up here."""
    record.info[_OPENED] = looked = _look(path)
    connection = dialect.connect(looked[0], *cargs, **cparams)
    try:
        cursor = connection.cursor()
        cursor.execute("PRAGMA schema_version")
        cursor.close()
    except Exception:
        connection.close()
        raise
    return connection


def sqlite_read_only_uri(path: Path) -> str:
    """The URI that opens `path` read-only given the files beside it now; `ReadOnlyUnavailable` if none can."""
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    location = f"file:{quote(str(path))}"
    if not _wal_mode(path):
        return f"{location}?mode=ro"
    if wal.exists() and shm.exists():
        return f"{location}?mode=ro&readonly_shm=1"
    if not wal.exists() or wal.stat().st_size == 0:
        return f"{location}?mode=ro&immutable=1"
    raise ReadOnlyUnavailable(
        f"{wal} holds commits not yet in {path}, and {shm.name}, which SQLite needs to read them without "
        f"writing, is missing (a copy made without it?); copy {shm.name} too, or read a copy of the three files"
    )


def _wal_mode(path: Path) -> bool:
    with path.open("rb") as file:
        header = file.read(SQLITE_HEADER_BYTES)
    return len(header) == SQLITE_HEADER_BYTES and header[18] == header[19] == SQLITE_WAL_VERSION


def lenient_json(text: Any) -> Any:
    """`json.loads`, but `NotJSON` for a value that is not JSON, so that one bad row does not fail a query."""
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError) as error:
        return NotJSON(str(error))
