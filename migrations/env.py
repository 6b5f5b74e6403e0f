"""Alembic environment for the event log (async, SQLite or PostgreSQL).

Three ways in:
* programmatic, from `modeladapter.migrations.upgrade()` at start-up: a connection arrives in
  `config.attributes["connection"]` and is used as is (we are already inside the operator's event loop);
* the `alembic` command with `alembic.ini` at the repository root: the URL comes from `-x url=...`,
  `MODELADAPTER_DATABASE_URL`, or the embedded default, and an async engine is created here;
* offline (`alembic upgrade head --sql`): SQL is printed, nothing is executed.

There is no `prepend_sys_path`: the package is imported as installed, never from the repository root.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from modeladapter.store.engine import DEFAULT_DATABASE_URL, create_engine, normalize_url
from modeladapter.store.schema import metadata

config = context.config


def _url() -> str:
    return (
        context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("MODELADAPTER_DATABASE_URL")
        or DEFAULT_DATABASE_URL
    )


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_migrations_offline() -> None:
    context.configure(
        url=normalize_url(_url()).render_as_string(hide_password=False),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_with(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_engine(_url())
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run_migrations_with)
    finally:
        await engine.dispose()


given: Connection | None = config.attributes.get("connection")
if context.is_offline_mode():
    run_migrations_offline()
elif given is not None:
    run_migrations_with(given)
else:
    asyncio.run(run_migrations_online())
