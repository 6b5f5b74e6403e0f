"""Fixtures shared by every test group: a fixed clock, recorded-event builders, and fresh databases.

The `database` fixture runs a test once on SQLite and once on PostgreSQL (127.0.0.1:5432, database `test`,
one schema per test). PostgreSQL is never skipped: if it is not reachable, the test fails and says so.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from modeladapter.fsm.events import AdapterEvent, RecordedEvent
from modeladapter.store import SqlEventStore
from modeladapter.store.engine import create_engine

# A test that hangs fails with every stack instead of stalling the run (see the module).
pytest_plugins = ["tests.hang_watchdog"]

RecordFn = Callable[[Sequence[AdapterEvent]], list[RecordedEvent]]


@pytest.fixture(scope="session")
def epoch() -> datetime:
    """A fixed, timezone-aware instant that tests count from."""
    return datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def as_recorded(epoch: datetime) -> RecordFn:
    """Wrap payloads as one stream's recorded events (versions and positions from 1), as a store would."""

    def record(payloads: Sequence[AdapterEvent], *, stream_id: str = "uid-1") -> list[RecordedEvent]:
        return [
            RecordedEvent(
                stream_id=stream_id,
                namespace="default",
                name="qwen-code-lora",
                version=version,
                position=version,
                event_id=uuid.uuid4(),
                recorded_at=epoch,
                reconcile_id=None,
                observed_generation=None,
                payload=payload,
            )
            for version, payload in enumerate(payloads, start=1)
        ]

    return record


# --- databases ----------------------------------------------------------------------------------------------

POSTGRES_URL = os.environ.get("MODELADAPTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


class Database:
    """A fresh, empty database for one test: a SQLite file, or a PostgreSQL schema of its own."""

    def __init__(self, kind: str, url: str, connect_args: dict[str, object]) -> None:
        self.kind = kind
        self.url = url
        self.connect_args = connect_args

    def engine(self) -> AsyncEngine:
        return create_engine(self.url, connect_args=dict(self.connect_args))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: object) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        yield Database("sqlite", f"sqlite:///{tmp_path}/events.db", {})
        return
    schema = f"ma_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    try:
        async with admin.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as error:  # the test must fail, not skip: CI provides PostgreSQL
        await admin.dispose()
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required for this test and is not usable: {error}")
    try:
        yield Database("postgres", POSTGRES_URL, {"server_settings": {"search_path": schema}})
    finally:
        async with admin.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture
async def engine(database: Database) -> AsyncIterator[AsyncEngine]:
    engine = database.engine()
    yield engine
    await engine.dispose()


# --- whole databases, for tests that hand a URL to the CLI or to a process --------------------------------------


def postgres_admin(statement: str, *, fail: bool = True) -> None:
    """Run `statement` outside a transaction (CREATE/DROP DATABASE) on the test server.

    Unreachable PostgreSQL fails the test (never skips) unless `fail` is False, when the error is raised."""

    async def run() -> None:
        engine = create_engine(POSTGRES_URL)
        try:
            async with engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.execute(text(statement))
        finally:
            await engine.dispose()

    try:
        asyncio.run(run())
    except OSError as error:  # every machine of this project runs PostgreSQL
        if not fail:
            raise
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required and is not reachable: {error}")


def postgres_database_url(name: str) -> str:
    """The URL of database `name` on the test server."""
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def read_log(database_url: str) -> list[RecordedEvent]:
    """Every event of the log at `database_url`, in position order, read with the store's plain `read_all`."""

    async def read() -> list[RecordedEvent]:
        engine = create_engine(database_url)
        try:
            return await SqlEventStore(engine).read_all(limit=1_000_000)
        finally:
            await engine.dispose()

    return asyncio.run(read())
