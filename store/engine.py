"""Database URLs and engines: SQLite (aiosqlite, the embedded default) and PostgreSQL (asyncpg).

Plain URLs are accepted and given the async driver: `sqlite:///path.db` becomes `sqlite+aiosqlite:///path.db`,
`postgresql://...` becomes `postgresql+asyncpg://...`. SQLite runs in WAL mode (readers never block the
writer), with foreign keys on and a busy timeout, and leaves transaction control to us so that appends can
take the write lock up front (`BEGIN IMMEDIATE`) instead of failing on a lock upgrade.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from modeladapter.store.postgres_url import BadPostgresParameter, check_parameters, connect_arguments, redacted

DEFAULT_DATABASE_URL: Final = "sqlite+aiosqlite:///.modeladapter/events.db"

_SQLITE_DRIVERS: Final = frozenset({"sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"})
_POSTGRES_DRIVERS: Final = frozenset(
    {"postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg", "postgresql+asyncpg"}
)
SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
POSTGRES_CONNECT_TIMEOUT_S: Final = 10.0
POSTGRES_COMMAND_TIMEOUT_S: Final = 120.0
"""No statement waits longer (a lock held by a stuck session, a connection silently dead on the network): it
fails, and the reconcile is retried, instead of freezing a worker for good."""
IMMEDIATE: Final = "modeladapter_sqlite_immediate"
"""Execution option: begin this connection's transaction with `BEGIN IMMEDIATE` (SQLite only)."""


class UnsupportedDatabase(ValueError):
    """The URL is not a SQLite or PostgreSQL URL."""


class BadDatabaseParameter(UnsupportedDatabase):
    """A PostgreSQL URL with a parameter that is unknown or has a value it cannot take (the message names it and
    shows the URL with its password masked)."""


def normalize_url(url: str | URL) -> URL:
    """The URL with the async driver this project uses; raises `UnsupportedDatabase` on anything else."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError as error:
        raise UnsupportedDatabase(f"not a database URL: {error}") from None
    if parsed.drivername in _SQLITE_DRIVERS:
        return parsed.set(drivername="sqlite+aiosqlite")
    if parsed.drivername in _POSTGRES_DRIVERS:
        try:
            check_parameters(parsed)
        except BadPostgresParameter as error:
            raise BadDatabaseParameter(f"{error} (in {redacted(parsed)})") from None
        return parsed.set(drivername="postgresql+asyncpg")
    raise UnsupportedDatabase(
        f"unsupported database {parsed.drivername!r} in {redacted(parsed)}; "
        "use sqlite:///PATH or postgresql://USER@HOST/DB"
    )


def redact_url(url: str | URL) -> str:
    """The URL as it may be printed or logged: any password is masked."""
    try:
        return redacted(make_url(url) if isinstance(url, str) else url)
    except ArgumentError:
        return "<unparseable database URL>"


def is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def create_engine(url: str | URL, *, connect_args: dict[str, Any] | None = None, echo: bool = False) -> AsyncEngine:
    """An async engine for the event log. For a SQLite file, its directory is created if missing."""
    normalized = normalize_url(url)
    if normalized.get_backend_name() == "sqlite":
        return _sqlite_engine(normalized, connect_args or {}, echo)
    bare, from_url = connect_arguments(normalized)
    settings = {**from_url.pop("server_settings", {}), **(connect_args or {}).get("server_settings", {})}
    return create_async_engine(
        bare,
        connect_args={
            "timeout": POSTGRES_CONNECT_TIMEOUT_S,
            "command_timeout": POSTGRES_COMMAND_TIMEOUT_S,
            **from_url,
            **(connect_args or {}),
            **({"server_settings": settings} if settings else {}),
        },
        echo=echo,
        # A connection killed under us (failover, pg_terminate_backend) is replaced, not handed out.
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
    )


def _sqlite_engine(url: URL, connect_args: dict[str, Any], echo: bool) -> AsyncEngine:
    options: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, **connect_args}}
    if is_memory_sqlite(url):
        # One in-memory database shared by every checkout, instead of a new empty one per connection.
        options["poolclass"] = StaticPool
    else:
        assert url.database is not None
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, echo=echo, **options)
    _configure_sqlite(engine.sync_engine, memory=is_memory_sqlite(url))
    return engine


def sqlite_writer_engine(engine: AsyncEngine) -> Engine | None:
    """A synchronous engine on the same SQLite file, for the event writer's thread; None for memory or PostgreSQL.

    The writer runs a whole group commit in one trip to a thread instead of one trip per statement (what
    aiosqlite costs), which is most of an append's time on SQLite. The pragmas and `BEGIN IMMEDIATE` are the
    async engine's.
    """
    url = engine.url
    if url.get_backend_name() != "sqlite" or is_memory_sqlite(url):
        return None
    writer = create_sync_engine(
        url.set(drivername="sqlite+pysqlite"),
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        pool_size=1,
        max_overflow=0,
    )
    _configure_sqlite(writer, memory=False)
    return writer


def _configure_sqlite(engine: Engine, *, memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy's "begin" event, below, decide how transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            # WAL with NORMAL is durable against process crashes; only an OS crash may lose the last commits.
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Checkpoint every ~16 MB of WAL rather than 4 MB: a checkpoint syncs the file, and index pages
            # rewritten by many appends are copied once. Measured: appends/s up from ~1,700 to ~2,100.
            cursor.execute("PRAGMA wal_autocheckpoint=4000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
