"""The event log's figures: appends per second (SQLite, PostgreSQL), folds per second, and `history` on a big log.

The events are a real adapter's: the event catalogue's example story (`docs.catalogue`), 67
events decided by the real state machines (retries, a pod switch, Running, an eviction, a lost pod, deletion).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import make_url

from docs.catalogue import example_story
from modeladapter import migrations
from modeladapter.fsm.events import NewEvent, RecordedEvent
from modeladapter.fsm.state import fold
from modeladapter.operator.audit import auditing, rendering
from modeladapter.store import SqlEventStore, create_engine

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
WRITERS = 16
BATCH = 5


def story() -> list[RecordedEvent]:
    return example_story()


# --- appends ------------------------------------------------------------------------------------------------


async def fresh_database(backend: str, directory: str) -> str:
    """An empty database of `backend`: a new SQLite file, or a new PostgreSQL database (dropped by `drop`)."""
    if backend == "sqlite":
        return f"sqlite:///{directory}/bench-{uuid.uuid4().hex[:8]}.db"
    name = f"ma_bench_{uuid.uuid4().hex[:10]}"
    await _postgres_admin(f'CREATE DATABASE "{name}"')
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


async def drop(url: str) -> None:
    if url.startswith("postgresql"):
        await _postgres_admin(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


async def _postgres_admin(statement: str) -> None:
    engine = create_engine(POSTGRES_URL)
    try:
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text(statement))
    finally:
        await engine.dispose()


async def appends_per_second(url: str, *, seconds: float) -> float:
    """16 writers, each on its own stream, append one reconcile's batch (5 events) after another."""
    engine = create_engine(url)
    await migrations.upgrade(engine)
    store = SqlEventStore(engine)
    payloads = [event.payload for event in story()[:BATCH]]
    done = 0
    stop_at = time.monotonic() + seconds

    async def writer(number: int) -> None:
        nonlocal done
        stream = f"bench-writer-{number}-{uuid.uuid4().hex[:8]}"
        version = 0
        while time.monotonic() < stop_at:
            now = datetime.now(UTC)
            batch = [NewEvent(payload=payload, recorded_at=now) for payload in payloads]
            await store.append(stream, batch, expected_version=version, namespace="bench", name=stream)
            version += BATCH
            done += 1

    started = time.monotonic()
    try:
        await asyncio.gather(*(writer(n) for n in range(WRITERS)))
    finally:
        await store.close()
    return done / (time.monotonic() - started)


# --- folding ------------------------------------------------------------------------------------------------


def folds_per_second(*, events: int) -> float:
    """Events folded into AdapterState per second: the example story, folded whole, over and over."""
    whole = story()
    rounds = max(1, events // len(whole))
    started = time.perf_counter()
    for _ in range(rounds):
        fold(whole)
    return rounds * len(whole) / (time.perf_counter() - started)


# --- history on a big log -----------------------------------------------------------------------------------


@dataclass
class BigLog:
    url: str
    events: int
    target: str
    """The adapter whose history is asked for (in the middle of the log)."""
    build_seconds: float


async def build_big_log(url: str, *, events: int) -> BigLog:
    """`events` events: the example story appended once, then copied under new adapters by SQL."""
    started = time.monotonic()
    engine = create_engine(url)
    await migrations.upgrade(engine)
    store = SqlEventStore(engine)
    template = story()
    first = [NewEvent(payload=e.payload, recorded_at=e.recorded_at, reconcile_id=e.reconcile_id,
                      observed_generation=e.observed_generation) for e in template]  # fmt: skip
    await store.append("bench-0", first, expected_version=0, namespace="default", name="adapter-0")
    copies = max(1, events // len(template))
    sqlite = url.startswith("sqlite")
    new_id = "lower(hex(randomblob(16)))" if sqlite else "gen_random_uuid()"
    series = (
        "WITH RECURSIVE copies(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM copies WHERE i < :last) "
        if sqlite
        else "WITH copies(i) AS (SELECT generate_series(1, :last)) "
    )
    concat = "'bench-' || copies.i" if sqlite else "'bench-' || copies.i::text"
    name = "'adapter-' || copies.i" if sqlite else "'adapter-' || copies.i::text"
    chunk = 2000
    async with engine.begin() as connection:
        for low in range(1, copies, chunk):
            high = min(copies - 1, low + chunk - 1)
            bounds = {"last": high, "low": low, "size": len(template)}
            await connection.execute(text(
                f"{series}INSERT INTO adapter_streams (stream_id, namespace, name, created_at, version, phase, "
                f"phase_since, finalized_at) SELECT {concat}, namespace, {name}, created_at, version, phase, "
                f"phase_since, finalized_at FROM adapter_streams, copies WHERE stream_id = 'bench-0' AND copies.i >= :low"
            ), bounds)  # fmt: skip
            await connection.execute(text(
                f"{series}INSERT INTO adapter_events (stream_id, version, position, event_id, type, schema_version, "
                f"recorded_at, reconcile_id, observed_generation, payload) SELECT {concat}, version, "
                f"position + copies.i * :size, {new_id}, type, schema_version, recorded_at, reconcile_id, "
                f"observed_generation, payload FROM adapter_events, copies WHERE stream_id = 'bench-0' AND copies.i >= :low"
            ), bounds)  # fmt: skip
    if not sqlite:
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM ANALYZE"))
    await store.close()
    return BigLog(url, copies * len(template), f"adapter-{copies // 2}", time.monotonic() - started)


async def history_ms(log: BigLog, *, trials: int) -> list[float]:
    """Milliseconds for `history NAME` (query, fold and table), in process, as the command computes it."""
    engine = create_engine(log.url)
    store = SqlEventStore(engine)
    timings: list[float] = []
    try:
        for _ in range(trials):
            started = time.perf_counter()
            result = await auditing.history(store, namespace="default", name=log.target, now=datetime.now(UTC))
            rendering.history_table(result)
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        await store.close()
    return timings


def median(values: list[float]) -> float:
    return statistics.median(values)
