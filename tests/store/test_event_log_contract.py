"""The event log's contract, run unchanged against SQLite and PostgreSQL.

Appends are all-or-nothing and guarded by the expected version; reads return exactly what was appended, in
order; positions order every event of every stream without gaps; a malformed row is reported, not guessed at.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Protocol

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from modeladapter.fsm.events import (
    AdapterEvent,
    Finalized,
    NewEvent,
    PhaseChanged,
    PodLost,
    SpecObserved,
    stamp,
)
from modeladapter.fsm.phases import Phase
from modeladapter.store import ConcurrencyConflict, CorruptEvent, SqlEventStore, StoreError, StreamIdentityMismatch
from modeladapter.store.codec import Codec
from modeladapter.store.engine import IMMEDIATE
from modeladapter.store.errors import DuplicateEvent
from modeladapter.store.eventstore import APPEND_LOCK_KEY
from modeladapter.store.schema import events, streams

NS, NAME = "default", "qwen-code-lora"


class FreshDatabase(Protocol):
    """The `database` fixture of tests/conftest.py."""

    def engine(self) -> AsyncEngine: ...


def spec(generation: int = 1) -> SpecObserved:
    return SpecObserved(
        generation=generation,
        artifact_url="huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora",
        replicas=None,
        scheduler_name="default",
        pod_selector="model.aibrix.ai/name=qwen-coder-1-5b-instruct",
        base_model="qwen-coder-1-5b-instruct",
    )


def pending() -> PhaseChanged:
    return PhaseChanged(
        from_phase=None,
        to_phase=Phase.PENDING,
        trigger="created",
        reason="ModelAdapterPending",
        message="Starting reconciliation",
    )


def batch(at: datetime, *payloads: AdapterEvent, reconcile_id: str = "r-1") -> list[NewEvent]:
    return stamp(list(payloads), at=at, reconcile_id=reconcile_id, observed_generation=1)


def new_stream() -> str:
    return str(uuid.uuid4())


class TestAppendingAndReading:
    async def test_what_is_appended_is_read_back_exactly(self, store: SqlEventStore, epoch: datetime) -> None:
        stream = new_stream()
        at = epoch + timedelta(microseconds=123456)
        appended = await store.append(stream, batch(at, spec(), pending()), expected_version=0, namespace=NS, name=NAME)
        read = await store.read(stream)
        assert read == appended
        assert [e.version for e in read] == [1, 2]
        assert [e.payload for e in read] == [spec(), pending()]
        first = read[0]
        assert (first.namespace, first.name, first.reconcile_id, first.observed_generation) == (NS, NAME, "r-1", 1)
        assert first.recorded_at == at and first.recorded_at.utcoffset() == timedelta(0)

    async def test_a_row_is_stored_as_sqlalchemys_own_insert_stores_it(
        self, store: SqlEventStore, epoch: datetime
    ) -> None:
        # The SQLite writer encodes rows itself (the columns' own processors, without SQLAlchemy's per-row
        # machinery); queries compare the stored text, so it must be byte for byte what an insert stores.
        appended_stream, inserted_stream = new_stream(), new_stream()
        for round_, at in enumerate((epoch, epoch + timedelta(microseconds=123456))):
            (appended,) = await store.append(
                appended_stream,
                batch(at, spec()),
                expected_version=await store.last_version(appended_stream),
                namespace=NS,
                name=NAME,
            )
            row = {
                column: getattr(appended, column)
                for column in ("version", "event_id", "recorded_at", "reconcile_id", "observed_generation")
            }
            async with store.engine.begin() as connection:
                if round_ == 0:
                    await connection.execute(
                        insert(streams),
                        {"stream_id": inserted_stream, "namespace": NS, "name": "x", "created_at": at, "version": 0},
                    )
                await connection.execute(insert(events), {
                    **row, "stream_id": inserted_stream, "position": appended.position + 1000, "event_id": uuid.uuid4(),
                    "type": "SpecObserved", "schema_version": 1, "payload": store.codec.encode(appended)[2],
                })  # fmt: skip
            columns = (
                "version, type, schema_version, recorded_at, reconcile_id, observed_generation, CAST(payload AS TEXT)"
            )
            async with store.engine.connect() as connection:
                stored = (
                    await connection.execute(
                        text(f"SELECT {columns} FROM adapter_events WHERE stream_id = :s AND version = :v"),
                        {"s": appended_stream, "v": appended.version},
                    )
                ).one()
                reference = (
                    await connection.execute(
                        text(f"SELECT {columns} FROM adapter_events WHERE stream_id = :s AND version = :v"),
                        {"s": inserted_stream, "v": appended.version},
                    )
                ).one()
                assert tuple(stored) == tuple(reference)
                if store.engine.dialect.name == "sqlite":
                    id_text = (
                        await connection.execute(
                            text("SELECT event_id FROM adapter_events WHERE event_id = :e"),
                            {"e": appended.event_id.hex},
                        )
                    ).scalar()
                    assert id_text == appended.event_id.hex

    async def test_a_stream_grows_batch_by_batch(self, store: SqlEventStore, epoch: datetime) -> None:
        stream = new_stream()
        await store.append(stream, batch(epoch, spec()), expected_version=0, namespace=NS, name=NAME)
        await store.append(stream, batch(epoch, pending(), spec(2)), expected_version=1, namespace=NS, name=NAME)
        assert [e.version for e in await store.read(stream)] == [1, 2, 3]
        assert await store.last_version(stream) == 3

    async def test_reading_a_slice_of_versions(self, store: SqlEventStore, epoch: datetime) -> None:
        stream = new_stream()
        await store.append(
            stream, batch(epoch, *[spec(g) for g in range(1, 6)]), expected_version=0, namespace=NS, name=NAME
        )
        assert [e.version for e in await store.read(stream, after=1, upto=3)] == [2, 3]
        assert [e.version for e in await store.read(stream, after=4)] == [5]
        assert await store.read(stream, after=5) == []

    async def test_an_unknown_stream_is_empty(self, store: SqlEventStore) -> None:
        assert await store.read("no-such-uid") == []
        assert await store.last_version("no-such-uid") == 0

    async def test_reading_everything_in_position_order(self, store: SqlEventStore, epoch: datetime) -> None:
        a, b = new_stream(), new_stream()
        await store.append(a, batch(epoch, spec()), expected_version=0, namespace=NS, name="a")
        await store.append(b, batch(epoch, spec(), pending()), expected_version=0, namespace=NS, name="b")
        await store.append(a, batch(epoch, pending()), expected_version=1, namespace=NS, name="a")
        everything = await store.read_all()
        assert [(e.stream_id, e.version) for e in everything] == [(a, 1), (b, 1), (b, 2), (a, 2)]
        assert [e.position for e in everything] == [1, 2, 3, 4]
        assert [e.position for e in await store.read_all(after_position=2, limit=1)] == [3]
        assert [(e.stream_id, e.version) for e in await store.read_all(types=["PhaseChanged"])] == [(b, 2), (a, 2)]

    async def test_streams_are_found_by_namespace_and_name_across_re_creations(
        self, store: SqlEventStore, epoch: datetime
    ) -> None:
        first, second = new_stream(), new_stream()
        await store.append(first, batch(epoch, spec(), Finalized()), expected_version=0, namespace=NS, name=NAME)
        await store.append(
            second, batch(epoch + timedelta(seconds=1), spec()), expected_version=0, namespace=NS, name=NAME
        )
        await store.append(new_stream(), batch(epoch, spec()), expected_version=0, namespace="other", name=NAME)
        found = await store.streams(namespace=NS, name=NAME)
        assert [s.stream_id for s in found] == [first, second]
        assert found[0].finalized_at == epoch and found[1].finalized_at is None
        assert found[0].version == 2

    async def test_the_stream_row_tracks_the_current_phase(self, store: SqlEventStore, epoch: datetime) -> None:
        stream = new_stream()
        later = epoch + timedelta(seconds=3)
        await store.append(stream, batch(epoch, spec(), pending()), expected_version=0, namespace=NS, name=NAME)
        await store.append(stream, batch(later, spec(2)), expected_version=2, namespace=NS, name=NAME)
        (info,) = await store.streams(namespace=NS, name=NAME)
        assert (info.phase, info.phase_since, info.version) == ("Pending", epoch, 3)


class TestOptimisticConcurrency:
    async def test_a_stale_expected_version_is_a_conflict_and_writes_nothing(
        self, store: SqlEventStore, epoch: datetime
    ) -> None:
        stream = new_stream()
        await store.append(stream, batch(epoch, spec(), pending()), expected_version=0, namespace=NS, name=NAME)
        with pytest.raises(ConcurrencyConflict) as conflict:
            await store.append(stream, batch(epoch, spec(2)), expected_version=1, namespace=NS, name=NAME)
        assert (conflict.value.stream_id, conflict.value.expected_version, conflict.value.actual_version) == (
            stream,
            1,
            2,
        )
        assert "expected version 1" in str(conflict.value) and "at version 2" in str(conflict.value)
        assert await store.last_version(stream) == 2

    async def test_a_new_stream_must_be_expected_at_version_zero(self, store: SqlEventStore, epoch: datetime) -> None:
        with pytest.raises(ConcurrencyConflict) as conflict:
            await store.append(new_stream(), batch(epoch, spec()), expected_version=3, namespace=NS, name=NAME)
        assert (conflict.value.expected_version, conflict.value.actual_version) == (3, 0)

    async def test_two_racing_appenders_exactly_one_wins(
        self, database: FreshDatabase, store: SqlEventStore, epoch: datetime
    ) -> None:
        """Two stores (two processes' worth of connections) race on the same streams, round after round."""
        rival_engine = database.engine()
        rival = SqlEventStore(rival_engine)
        try:
            for _ in range(15):
                stream = new_stream()
                ours = batch(epoch, spec(), pending(), reconcile_id="ours")
                theirs = batch(epoch, spec(), reconcile_id="theirs")
                outcomes = await asyncio.gather(
                    store.append(stream, ours, expected_version=0, namespace=NS, name=NAME),
                    rival.append(stream, theirs, expected_version=0, namespace=NS, name=NAME),
                    return_exceptions=True,
                )
                winners = [o for o in outcomes if isinstance(o, list)]
                losers = [o for o in outcomes if isinstance(o, ConcurrencyConflict)]
                assert (len(winners), len(losers)) == (1, 1), outcomes
                assert losers[0].expected_version == 0 and losers[0].actual_version == len(winners[0])
                assert await store.read(stream) == winners[0], "the log holds exactly the winner's batch"
        finally:
            await rival.close()

    async def test_concurrent_writers_on_their_own_streams_all_land_contiguously(
        self, store: SqlEventStore, epoch: datetime
    ) -> None:
        async def writer(stream: str) -> None:
            for version in range(0, 30, 3):
                await store.append(
                    stream, batch(epoch, spec(), spec(), spec()), expected_version=version, namespace=NS, name=stream
                )

        streams = [new_stream() for _ in range(16)]
        await asyncio.gather(*(writer(s) for s in streams))
        for stream in streams:
            assert [e.version for e in await store.read(stream)] == list(range(1, 31))
        everything = await store.read_all(limit=10_000)
        assert [e.position for e in everything] == list(range(1, 16 * 30 + 1))
        assert len({e.event_id for e in everything}) == len(everything)

    async def test_a_reader_tailing_the_log_sees_every_event_once_and_in_order(
        self, database: FreshDatabase, store: SqlEventStore, epoch: datetime
    ) -> None:
        """Positions commit in order, so following `read_all` from the last position seen never skips one."""
        rival = SqlEventStore(database.engine())
        writers_done = asyncio.Event()
        seen: list[int] = []

        async def tail() -> None:
            while True:
                finished = writers_done.is_set()
                seen.extend(e.position for e in await store.read_all(after_position=seen[-1] if seen else 0, limit=7))
                if finished and not await store.read_all(after_position=seen[-1] if seen else 0):
                    return

        async def write(writer: SqlEventStore, stream: str) -> None:
            for version in range(0, 20, 2):
                await writer.append(
                    stream, batch(epoch, spec(), pending()), expected_version=version, namespace=NS, name=stream
                )

        try:
            tailer = asyncio.create_task(tail())
            await asyncio.gather(*(write(w, new_stream()) for w in (store, rival) * 4))
            writers_done.set()
            await tailer
        finally:
            await rival.close()
        assert seen == list(range(1, 8 * 20 + 1))

    async def test_batches_for_one_stream_submitted_together_are_arbitrated_in_order(
        self, store: SqlEventStore, epoch: datetime
    ) -> None:
        stream = new_stream()
        first = store.append(stream, batch(epoch, spec()), expected_version=0, namespace=NS, name=NAME)
        follow_up = store.append(stream, batch(epoch, pending()), expected_version=1, namespace=NS, name=NAME)
        stale = store.append(stream, batch(epoch, spec(2)), expected_version=0, namespace=NS, name=NAME)
        outcomes = await asyncio.gather(first, follow_up, stale, return_exceptions=True)
        assert isinstance(outcomes[0], list) and isinstance(outcomes[1], list)
        assert isinstance(outcomes[2], ConcurrencyConflict) and outcomes[2].actual_version == 2
        assert [e.payload for e in await store.read(stream)] == [spec(), pending()]


class TestAllOrNothing:
    async def test_a_batch_with_an_already_recorded_event_lands_not_at_all(
        self, store: SqlEventStore, epoch: datetime
    ) -> None:
        stream = new_stream()
        (recorded,) = batch(epoch, spec())
        await store.append(stream, [recorded], expected_version=0, namespace=NS, name=NAME)
        replayed = [*batch(epoch, pending()), recorded]
        with pytest.raises(DuplicateEvent, match=stream):
            await store.append(stream, replayed, expected_version=1, namespace=NS, name=NAME)
        assert [e.version for e in await store.read(stream)] == [1]
        assert await store.last_version(stream) == 1

    async def test_one_bad_batch_does_not_sink_the_others_submitted_with_it(
        self, store: SqlEventStore, epoch: datetime
    ) -> None:
        poisoned, healthy = new_stream(), [new_stream() for _ in range(5)]
        (recorded,) = batch(epoch, spec())
        await store.append(poisoned, [recorded], expected_version=0, namespace=NS, name=NAME)
        outcomes = await asyncio.gather(
            store.append(poisoned, [*batch(epoch, pending()), recorded], expected_version=1, namespace=NS, name=NAME),
            *(
                store.append(s, batch(epoch, spec(), pending()), expected_version=0, namespace=NS, name=s)
                for s in healthy
            ),
            return_exceptions=True,
        )
        assert isinstance(outcomes[0], DuplicateEvent)
        assert all(isinstance(o, list) and len(o) == 2 for o in outcomes[1:])
        positions = [e.position for e in await store.read_all(limit=100)]
        assert positions == list(range(1, len(positions) + 1)), "no gaps left by the rejected batch"

    async def test_a_batch_may_not_repeat_an_event(self, store: SqlEventStore, epoch: datetime) -> None:
        (event,) = batch(epoch, spec())
        with pytest.raises(ValueError, match="same event id twice"):
            await store.append(new_stream(), [event, event], expected_version=0, namespace=NS, name=NAME)

    async def test_an_empty_batch_only_checks_the_version(self, store: SqlEventStore, epoch: datetime) -> None:
        stream = new_stream()
        assert await store.append(stream, [], expected_version=0, namespace=NS, name=NAME) == []
        await store.append(stream, batch(epoch, spec()), expected_version=0, namespace=NS, name=NAME)
        with pytest.raises(ConcurrencyConflict):
            await store.append(stream, [], expected_version=0, namespace=NS, name=NAME)


class TestShutdown:
    async def test_a_writer_stopped_mid_commit_fails_its_callers_instead_of_stranding_them(
        self, database: FreshDatabase, store: SqlEventStore, epoch: datetime
    ) -> None:
        """At shutdown the event loop cancels every task, the group-commit writer included."""
        blocker = database.engine()
        async with blocker.connect() as holder:
            # Another writer holds the append lock, so our commit waits inside the writer task.
            if store.engine.dialect.name == "postgresql":
                await holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": APPEND_LOCK_KEY})
            else:
                holder = await holder.execution_options(**{IMMEDIATE: True})
                await holder.begin()
            waiting = asyncio.create_task(
                store.append(new_stream(), batch(epoch, spec()), expected_version=0, namespace=NS, name=NAME)
            )
            await asyncio.sleep(0.3)
            assert store._writer is not None and not waiting.done()
            store._writer.cancel()
            with pytest.raises(StoreError, match="may or may not have been written"):
                await asyncio.wait_for(waiting, timeout=10)
            await holder.rollback()
        await blocker.dispose()


class TestBadInput:
    async def test_a_stream_keeps_the_identity_it_was_created_with(self, store: SqlEventStore, epoch: datetime) -> None:
        stream = new_stream()
        await store.append(stream, batch(epoch, spec()), expected_version=0, namespace=NS, name=NAME)
        with pytest.raises(StreamIdentityMismatch, match=f"belongs to {NS}/{NAME}, not other/{NAME}"):
            await store.append(stream, batch(epoch, pending()), expected_version=1, namespace="other", name=NAME)

    async def test_a_negative_expected_version_is_refused(self, store: SqlEventStore, epoch: datetime) -> None:
        with pytest.raises(ValueError, match=">= 0"):
            await store.append(new_stream(), batch(epoch, spec()), expected_version=-1, namespace=NS, name=NAME)

    @pytest.mark.parametrize(
        ("type_", "payload", "detail"),
        [
            pytest.param("PodLost", '{"pod": "p"}', "reason: Field required", id="missing-field"),
            pytest.param(
                "PodLost", '{"pod": 7, "reason": "x"}', "pod: Input should be a valid string", id="wrong-type"
            ),
            pytest.param("PodExploded", '{"pod": "p"}', "does not match any of the expected tags", id="unknown-type"),
            pytest.param("PodLost", '["not", "an", "object"]', "not a JSON object", id="not-an-object"),
        ],
    )
    async def test_a_malformed_stored_event_names_its_stream_and_version(
        self, store: SqlEventStore, epoch: datetime, type_: str, payload: str, detail: str
    ) -> None:
        stream = new_stream()
        await store.append(stream, batch(epoch, spec()), expected_version=0, namespace=NS, name=NAME)
        await _write_raw_row(store, stream, version=2, position=2, type_=type_, schema_version=1, payload=payload)
        with pytest.raises(CorruptEvent) as corrupt:
            await store.read(stream)
        assert (corrupt.value.stream_id, corrupt.value.version) == (stream, 2)
        assert f"stream {stream} version 2" in str(corrupt.value)
        assert detail in str(corrupt.value)


class TestUpcasting:
    async def test_an_older_payload_version_is_upcast_on_read(self, database: FreshDatabase, epoch: datetime) -> None:
        """A hypothetical v0 of PodLost called the pod `pod_name`; the log keeps it, the reader upgrades it."""
        from modeladapter import migrations

        def pod_lost_v0_to_v1(payload: dict[str, object]) -> dict[str, object]:
            payload = dict(payload)
            payload["pod"] = payload.pop("pod_name")
            return payload

        engine = database.engine()
        await migrations.upgrade(engine)
        store = SqlEventStore(engine, codec=Codec(upcasters={("PodLost", 0): pod_lost_v0_to_v1}))
        try:
            stream = new_stream()
            await store.append(stream, batch(epoch, spec()), expected_version=0, namespace=NS, name=NAME)
            await _write_raw_row(
                store,
                stream,
                version=2,
                position=2,
                type_="PodLost",
                schema_version=0,
                payload='{"pod_name": "vllm-0", "reason": "deleted"}',
            )
            assert (await store.read(stream))[1].payload == PodLost(pod="vllm-0", reason="deleted")
        finally:
            await store.close()


async def _write_raw_row(
    store: SqlEventStore, stream: str, *, version: int, position: int, type_: str, schema_version: int, payload: str
) -> None:
    """Bypass the store, as a bug or a hand edit might."""
    cast = "CAST(:payload AS JSONB)" if store.engine.dialect.name == "postgresql" else ":payload"
    async with store.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO adapter_events (stream_id, version, position, event_id, type, schema_version,"
                " recorded_at, payload)"
                f" VALUES (:stream, :version, :position, :event_id, :type, :schema_version, :at, {cast})"
            ),
            {
                "stream": stream,
                "version": version,
                "position": position,
                "event_id": str(uuid.uuid4()) if store.engine.dialect.name == "postgresql" else uuid.uuid4().hex,
                "type": type_,
                "schema_version": schema_version,
                "at": datetime(2026, 1, 1)
                if store.engine.dialect.name == "sqlite"
                else datetime(2026, 1, 1).astimezone(),
                "payload": payload,
            },
        )
