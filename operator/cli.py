"""The `modeladapter` command (also `kubectl modeladapter`).

Subcommands so far: `demo` (the state machines and the event log, scripted) and `db upgrade` / `db current`.
Bad input ends with a one-line message on stderr and exit status 2; nothing is written in that case.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from modeladapter import migrations
from modeladapter.operator.demo import run_demo
from sqlalchemy.exc import DBAPIError

from modeladapter.store import DEFAULT_DATABASE_URL, SchemaTooNew, UnsupportedDatabase, create_engine
from modeladapter.store.engine import redact_url

USAGE_ERROR = 2


def _database_url(args: argparse.Namespace) -> str:
    return str(args.database_url or os.environ.get("MODELADAPTER_DATABASE_URL") or DEFAULT_DATABASE_URL)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modeladapter", description="Load LoRA adapters onto vLLM pods, with a replayable event log."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument(
        "--database-url",
        help=f"event log (env MODELADAPTER_DATABASE_URL; default {DEFAULT_DATABASE_URL})",
    )
    commands.add_parser(
        "demo", parents=[database], help="walk one adapter through retries, a pod switch and Running (scripted)"
    )
    db = commands.add_parser("db", help="the event log's schema").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", parents=[database], help="migrate the event log to this version's schema")
    db.add_parser("current", parents=[database], help="print the event log's schema revision")
    return parser


async def _db(command: str, url: str) -> int:
    engine = create_engine(url)
    try:
        if command == "upgrade":
            await migrations.upgrade(engine)
        print(await migrations.current_revision(engine) or "(empty database)")
        return 0
    finally:
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    url = _database_url(args)
    try:
        if args.command == "demo":
            return asyncio.run(run_demo(url, sys.stdout))
        return asyncio.run(_db(args.db_command, url))
    except (UnsupportedDatabase, SchemaTooNew) as error:
        print(f"modeladapter: {error}", file=sys.stderr)
        return USAGE_ERROR
    except (OSError, DBAPIError) as error:
        detail = error.orig if isinstance(error, DBAPIError) else error
        print(f"modeladapter: cannot use the event log {redact_url(url)}: {detail}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
