"""No wait on PostgreSQL is unbounded: a statement stuck on a lock or a dead connection fails, and is retried."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from modeladapter.store.engine import POSTGRES_COMMAND_TIMEOUT_S, create_engine
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.postgres


async def test_every_postgresql_connection_has_a_command_timeout() -> None:
    engine = create_engine(POSTGRES_URL, connect_args={"server_settings": {"application_name": "timeouts-test"}})
    try:
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            assert driver._config.command_timeout == POSTGRES_COMMAND_TIMEOUT_S
            name = (await connection.execute(text("SHOW application_name"))).scalar()
            assert name == "timeouts-test", "the caller's own connect arguments still apply"
    finally:
        await engine.dispose()


async def test_a_statement_waiting_on_a_lock_past_the_command_timeout_fails_instead_of_hanging() -> None:
    holder = create_engine(POSTGRES_URL)
    waiter = create_engine(POSTGRES_URL, connect_args={"command_timeout": 0.5})
    try:
        async with holder.connect() as holding, waiter.connect() as waiting:
            await holding.execute(text("SELECT pg_advisory_lock(424242)"))
            began = time.monotonic()
            with pytest.raises(TimeoutError):
                await waiting.execute(text("SELECT pg_advisory_lock(424242)"))
            assert time.monotonic() - began < 5
            await holding.execute(text("SELECT pg_advisory_unlock(424242)"))
    finally:
        await waiter.dispose()
        await holder.dispose()
