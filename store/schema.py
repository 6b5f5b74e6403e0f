"""The event log's tables (SQLAlchemy Core). Alembic migrations in `migrations/` must agree with this file.

`adapter_streams` — one row per ModelAdapter uid: its namespace and name (names are reused after a
ModelAdapter is re-created, uids never are), the stream's current version, and a small projection of its
phase kept in the same transaction as every append, so "which adapters are stuck" is an indexed query.

`adapter_events` — the append-only log. The primary key `(stream_id, version)` is the optimistic concurrency
check: two writers that read the same version cannot both append. `position` orders all events of all
streams (appends are serialised, so position order is commit order and a reader tailing the log never skips
an event that commits late). The payload is JSON without its `type` and `schema_version`, which are columns.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import DateTime, TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone; it stores UTC, naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored; times in the log are UTC-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONDocument = JSON().with_variant(JSONB(), "postgresql")

streams = Table(
    "adapter_streams",
    metadata,
    Column("stream_id", String(64), primary_key=True),
    Column("namespace", String(253), nullable=False),
    Column("name", String(253), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("version", BigInteger(), nullable=False),
    Column("phase", String(32), nullable=True),
    Column("phase_since", UTCDateTime(), nullable=True),
    Column("finalized_at", UTCDateTime(), nullable=True),
    Index(None, "namespace", "name"),
    Index(None, "phase", "phase_since"),
)

events = Table(
    "adapter_events",
    metadata,
    Column("stream_id", String(64), ForeignKey(streams.c.stream_id), primary_key=True),
    Column("version", BigInteger(), primary_key=True, autoincrement=False),
    Column("position", BigInteger(), nullable=False, unique=True),
    Column("event_id", Uuid(), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("schema_version", Integer(), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("reconcile_id", String(64), nullable=True),
    Column("observed_generation", BigInteger(), nullable=True),
    Column("payload", JSONDocument, nullable=False),
    Index(None, "type", "position"),
    Index(None, "stream_id", "type", "version"),
)
