"""A migrated, empty event log per test, on each backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from modeladapter import migrations
from modeladapter.store import SqlEventStore


@pytest.fixture
async def store(engine: AsyncEngine) -> AsyncIterator[SqlEventStore]:
    await migrations.upgrade(engine)
    store = SqlEventStore(engine)
    yield store
    await store.close()
