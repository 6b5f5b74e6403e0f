"""The initial event log: adapter_streams and adapter_events.

Revision ID: 0001_initial_event_log
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_initial_event_log"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "adapter_streams",
        sa.Column("stream_id", sa.String(length=64), nullable=False),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("phase", sa.String(length=32), nullable=True),
        sa.Column("phase_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finalized_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("stream_id", name=op.f("pk_adapter_streams")),
    )
    op.create_index(op.f("ix_adapter_streams_namespace_name"), "adapter_streams", ["namespace", "name"])
    op.create_index(op.f("ix_adapter_streams_phase_phase_since"), "adapter_streams", ["phase", "phase_since"])
    op.create_table(
        "adapter_events",
        sa.Column("stream_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reconcile_id", sa.String(length=64), nullable=True),
        sa.Column("observed_generation", sa.BigInteger(), nullable=True),
        sa.Column("payload", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["adapter_streams.stream_id"],
            name=op.f("fk_adapter_events_stream_id_adapter_streams"),
        ),
        sa.PrimaryKeyConstraint("stream_id", "version", name=op.f("pk_adapter_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_adapter_events_event_id")),
        sa.UniqueConstraint("position", name=op.f("uq_adapter_events_position")),
    )
    op.create_index(op.f("ix_adapter_events_type_position"), "adapter_events", ["type", "position"])
    op.create_index(
        op.f("ix_adapter_events_stream_id_type_version"), "adapter_events", ["stream_id", "type", "version"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_adapter_events_stream_id_type_version"), table_name="adapter_events")
    op.drop_index(op.f("ix_adapter_events_type_position"), table_name="adapter_events")
    op.drop_table("adapter_events")
    op.drop_index(op.f("ix_adapter_streams_phase_phase_since"), table_name="adapter_streams")
    op.drop_index(op.f("ix_adapter_streams_namespace_name"), table_name="adapter_streams")
    op.drop_table("adapter_streams")
