"""The `modeladapter` command (also `kubectl modeladapter`).

Subcommands so far: `run` (the operator), `manifests` (the CRD, RBAC and Deployment for `kubectl apply -f -`),
`demo` (the state machines and the event log, scripted) and `db upgrade` / `db current`.
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

from modeladapter.operator.manifests import (
    DEFAULT_NAMESPACE,
    PARTS,
    ManifestError,
    operator_manifests,
    render_manifests,
)
from modeladapter.operator.logs import configure_logging
from modeladapter.operator.settings import SettingsError, add_run_arguments, settings_from
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
    run = commands.add_parser(
        "run",
        help="run the operator",
        description="Run the operator. Every flag can also be set through the environment variable shown; "
        "a flag wins over its variable.",
    )
    add_run_arguments(run)
    manifests = commands.add_parser(
        "manifests",
        help="print the CRD, RBAC and Deployment as YAML for `kubectl apply -f -`",
        description="Print the operator's Kubernetes manifests: modeladapter manifests | kubectl apply -f -",
    )
    manifests.add_argument("--only", choices=PARTS, help="print one part only (default: all)")
    manifests.add_argument(
        "--namespace", default=DEFAULT_NAMESPACE, help=f"the operator's namespace (default {DEFAULT_NAMESPACE})"
    )
    manifests.add_argument("--image", help="the operator image (default modeladapter:<version>)")
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


def _run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args, os.environ)
    except SettingsError as error:
        print(f"modeladapter run: {error}", file=sys.stderr)
        return USAGE_ERROR
    # Imported here so that the read-only commands never load the reconcile core.
    from modeladapter.operator.running import run_operator

    configure_logging(level=settings.log_level, fmt=settings.log_format)
    try:
        return asyncio.run(run_operator(settings))
    except KeyboardInterrupt:
        return 130


def _manifests(args: argparse.Namespace) -> int:
    try:
        documents = operator_manifests(only=args.only, namespace=args.namespace, image=args.image)
    except ManifestError as error:
        print(f"modeladapter manifests: {error}", file=sys.stderr)
        return USAGE_ERROR
    sys.stdout.write(render_manifests(documents))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "manifests":
        return _manifests(args)
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
