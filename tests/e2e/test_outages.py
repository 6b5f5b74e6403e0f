"""An API server that goes away and an event log that is not there yet are waited out, never a crash."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine

from modeladapter.operator.controller.probes import CheckResult
from modeladapter.operator.controller.running import Operator
from modeladapter.operator.controller.settings import OperatorSettings
from modeladapter.operator.reconcile import log_health
from modeladapter.store import create_engine
from tests.conftest import POSTGRES_URL
from tests.e2e.conftest import Sandbox, adapter_manifest, free_port


def fast_settings(sandbox: Sandbox, database_url: str) -> OperatorSettings:
    """The operator process's settings with the sandbox's fast timings, no leader election."""
    return OperatorSettings(
        kubeconfig=sandbox.kubeconfig,
        database_url=database_url,
        leader_election=False,
        stability_window=0.0,
        backoff_base=0.05,
        verify_interval=0.3,
        probe_address="127.0.0.1:0",
    )


async def test_an_api_server_outage_is_survived(sandbox: Sandbox) -> None:
    await sandbox.add_pods(2)
    running = await sandbox.start_operator()
    await sandbox.apply(adapter_manifest("before", replicas=1))
    await sandbox.phase("Running", "before")
    await sandbox.server.stop()
    await asyncio.sleep(2.0)
    assert not running.task.done(), "the operator must not die with the API server"
    await sandbox.server.start()
    await sandbox.apply(adapter_manifest("after", replicas=1))
    await sandbox.phase("Running", "after", timeout=20)
    assert (await sandbox.status("before"))["phase"] == "Running"


@contextlib.asynccontextmanager
async def tcp_proxy(listen_port: int, target_port: int) -> AsyncIterator[None]:
    """Forward 127.0.0.1:listen_port to 127.0.0.1:target_port (a database that comes into reach)."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    try:
        yield
    finally:
        server.close()


async def test_an_unreachable_event_log_is_waited_for_and_reported_not_ready(sandbox: Sandbox) -> None:
    port = free_port()
    await sandbox.add_pods(1)
    async with fresh_postgres_database() as (url, _):
        unreachable = make_url(url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
        operator = Operator(fast_settings(sandbox, unreachable), probes=False)
        task = asyncio.create_task(operator.run())
        try:
            await sandbox.apply(adapter_manifest(replicas=1))
            await asyncio.sleep(1.5)
            assert not task.done(), "nothing to crash about: the database may come"
            verdict = operator.ready()
            assert isinstance(verdict, CheckResult) and "event log" in verdict.reason
            async with tcp_proxy(port, 5432):
                await sandbox.phase("Running", timeout=30)
                assert operator.ready() is True
                operator.stop()
                async with asyncio.timeout(20):
                    assert await task == 0
        finally:
            if not task.done():
                task.cancel()


@contextlib.asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[tuple[str, AsyncEngine]]:
    """A new, empty PostgreSQL database (its URL, and an admin engine on it), dropped afterwards."""
    database = f"ma_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL, connect_args={})
    async with admin.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text(f'CREATE DATABASE "{database}"'))
    url = f"{POSTGRES_URL.rsplit('/', 1)[0]}/{database}"
    inside = create_engine(url, connect_args={})
    try:
        yield url, inside
    finally:
        await inside.dispose()
        async with admin.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        await admin.dispose()


REFUSE_WRITES = """
CREATE FUNCTION refuse_writes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; END $$;
CREATE TRIGGER refuse_writes BEFORE INSERT ON adapter_events FOR EACH STATEMENT EXECUTE FUNCTION refuse_writes();
"""


async def test_a_log_that_cannot_be_written_makes_the_operator_unready_until_it_can(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=log_health.__name__)
    await sandbox.add_pods(1)
    async with fresh_postgres_database() as (url, database):
        operator = Operator(fast_settings(sandbox, url), probes=False)
        task = asyncio.create_task(operator.run())
        try:
            await sandbox.apply(adapter_manifest("first", replicas=1))
            await sandbox.phase("Running", "first")
            await sandbox.eventually(lambda: _ready(operator), what="readiness")
            async with database.begin() as connection:
                for statement in REFUSE_WRITES.split(";\n"):
                    if statement.strip():
                        await connection.execute(text(statement))
            await sandbox.apply(adapter_manifest("second", replicas=1))  # something to write

            async def refused() -> bool:
                verdict = operator.ready()
                return isinstance(verdict, CheckResult) and "event log cannot be written" in verdict.reason

            await sandbox.eventually(refused, what="readiness to fail")
            verdict = operator.ready()
            assert isinstance(verdict, CheckResult) and "No space left on device" in verdict.reason
            assert operator.healthy() is True, "the process is fine: restarting it would not free the disk"
            assert "modeladapter_event_log_writable 0.0" in operator.metrics.exposition().decode()
            async with database.begin() as connection:
                await connection.execute(text("DROP TRIGGER refuse_writes ON adapter_events"))
            await sandbox.phase("Running", "second", timeout=40)
            assert await _ready(operator)
            assert "modeladapter_event_log_writable 1.0" in operator.metrics.exposition().decode()
        finally:
            operator.stop()
            async with asyncio.timeout(20):
                await task
    messages = [r.getMessage() for r in caplog.records if r.name == log_health.__name__]
    assert any(m.startswith("the event log cannot be written") for m in messages), messages
    assert any(m.startswith("the event log can be written again") for m in messages), messages


async def test_the_running_operator_exposes_its_work_as_metrics(sandbox: Sandbox) -> None:
    await sandbox.add_pods(2)
    operator = Operator(fast_settings(sandbox, sandbox.database_url), probes=False)
    task = asyncio.create_task(operator.run())
    try:
        await sandbox.apply(adapter_manifest(replicas=1))
        await sandbox.phase("Running")
        await sandbox.eventually(lambda: _ready(operator), what="readiness")
        text = operator.metrics.exposition().decode()
        assert 'modeladapter_adapters{phase="Running"} 1.0' in text
        assert 'modeladapter_phase_transitions_total{from_phase="Bound",to_phase="Running"} 1.0' in text
        for family in (
            "modeladapter_load_duration_seconds_count",
            "modeladapter_reconcile_duration_seconds_count",
            "modeladapter_event_append_duration_seconds_count",
        ):
            sample = next(line for line in text.splitlines() if line.startswith(family))
            assert float(sample.rsplit(" ", 1)[1]) >= 1, sample
    finally:
        operator.stop()
        await asyncio.wait_for(task, 20)


async def _ready(operator: Operator) -> bool:
    return operator.ready() is True
