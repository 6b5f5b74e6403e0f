"""The SQL event log (SQLAlchemy 2, async): append, read, and the phase queries.

SQLite through aiosqlite is the embedded default; PostgreSQL through asyncpg serves deployments that need a
shared, highly available log. Both pass one contract test suite (`tests/store/`).
"""

from modeladapter.store.engine import DEFAULT_DATABASE_URL, UnsupportedDatabase, create_engine, normalize_url
from modeladapter.store.errors import (
    ConcurrencyConflict,
    CorruptEvent,
    SchemaTooNew,
    StoreError,
    StreamIdentityMismatch,
)
from modeladapter.store.eventstore import SqlEventStore, StreamInfo

__all__ = [
    "DEFAULT_DATABASE_URL",
    "ConcurrencyConflict",
    "CorruptEvent",
    "SchemaTooNew",
    "SqlEventStore",
    "StoreError",
    "StreamIdentityMismatch",
    "StreamInfo",
    "UnsupportedDatabase",
    "create_engine",
    "normalize_url",
]
