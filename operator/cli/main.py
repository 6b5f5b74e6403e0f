"""The `modeladapter` command (also `kubectl modeladapter`).

Subcommands so far: `run` (the operator), `manifests` (a kustomize base of `deploy/` for `kubectl apply -f -`),
`sandbox` (the whole system on this machine, no cluster), `db upgrade` / `db current`, the read-only audit
commands `history`, `events`, `replay`, `verify`, `stuck` and `stats` (`modeladapter.operator.cli.audit_commands`),
and `completion bash|zsh|fish` (`modeladapter.operator.cli.completion`); `--version` prints the version.
Installed as `kubectl-modeladapter` too, it names itself `kubectl modeladapter` when run under that name.
Bad input ends with a one-line message on stderr and exit status 2; nothing is written in that case.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from sqlalchemy.exc import DBAPIError

from modeladapter import migrations
from modeladapter.operator.cli.audit_commands import AUDIT_COMMANDS, add_audit_commands, run_audit_command
from modeladapter.operator.cli.completion import CompletionError, add_completion_command, completion_script
from modeladapter.operator.controller.logs import configure_logging
from modeladapter.operator.controller.settings import SettingsError, add_run_arguments, settings_from
from modeladapter.operator.kube.manifests import (
    DEFAULT_BASE,
    DEFAULT_NAMESPACE,
    ManifestError,
    bases,
    operator_manifests,
    render_manifests,
)
from modeladapter.store import DEFAULT_DATABASE_URL, SchemaTooNew, UnsupportedDatabase, create_engine
from modeladapter.store.engine import redact_url

USAGE_ERROR = 2


def _database_url(args: argparse.Namespace) -> str:
    return str(args.database_url or os.environ.get("MODELADAPTER_DATABASE_URL") or DEFAULT_DATABASE_URL)


def program_name(argv0: str | None = None) -> str:
    """`kubectl modeladapter` when run as the kubectl plugin (`kubectl-modeladapter`), else `modeladapter`."""
    invoked = os.path.basename(argv0 if argv0 is not None else (sys.argv[0] if sys.argv else ""))
    return "kubectl modeladapter" if invoked.startswith("kubectl-") else "modeladapter"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program_name(), description="Load LoRA adapters onto vLLM pods, with a replayable event log."
    )
    parser.add_argument("--version", action="version", version=f"modeladapter {_version()}")
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
        help="print a kustomize base of deploy/ as YAML for `kubectl apply -f -`",
        description="Print the objects `kubectl kustomize deploy/BASE` renders, from the same files: "
        "modeladapter manifests crds | kubectl apply -f - && modeladapter manifests | kubectl apply -f -",
    )
    manifests.add_argument(
        "base", nargs="?", default=DEFAULT_BASE, choices=bases(), metavar="BASE",
        help=f"one of {', '.join(bases())} (default {DEFAULT_BASE})",
    )  # fmt: skip
    manifests.add_argument(
        "--namespace",
        help=f"install into this namespace instead of {DEFAULT_NAMESPACE}; every name gets the prefix NAMESPACE- "
        "so that two installs never share a ClusterRole or ClusterRoleBinding",
    )
    manifests.add_argument(
        "--image", help="the operator image (default modeladapter:<version>); without a tag, :latest"
    )
    manifests.add_argument(
        "--without-crds", action="store_true", help="leave the CRD out (to delete an install but keep every adapter)"
    )
    _add_sandbox_arguments(
        commands.add_parser(
            "sandbox",
            parents=[database],
            help="run the API emulator, simulated vLLM pods, the operator and the event log here (no cluster)",
            description="Start, in this process and on loopback only, a Kubernetes API emulator, vLLM pods, the "
            "operator and the event log; apply the sample adapter (or -f FILE) and print every transition live. "
            "Ctrl-C stops it; the event log keeps everything.",
        )
    )
    add_audit_commands(commands, database=database)
    add_completion_command(commands)
    db = commands.add_parser("db", help="the event log's schema").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", parents=[database], help="migrate the event log to this version's schema")
    db.add_parser("current", parents=[database], help="print the event log's schema revision")
    return parser


def _add_sandbox_arguments(sandbox: argparse.ArgumentParser) -> None:
    # Values are checked by the sandbox, so that every bad one gets the same one-line message and status 2.
    sandbox.add_argument(
        "-f",
        "--filename",
        action="append",
        metavar="FILE",
        help="apply the ModelAdapters in FILE instead of the sample (repeatable)",
    )
    sandbox.add_argument("--pods", metavar="N", help="simulated vLLM pods, on 127.0.0.2 upward, port 8000 (default 3)")
    sandbox.add_argument(
        "--engine",
        metavar="sim|vllm",
        help="sim: simulated vLLM engines (default); vllm: real vLLM 0.32 CPU servers (.ci/prepare/30-vllm)",
    )
    sandbox.add_argument(
        "--exit-when-running",
        action="store_true",
        help="exit 0 once every applied adapter is Running, 1 after --timeout",
    )
    sandbox.add_argument(
        "--timeout",
        metavar="DURATION",
        help="with --exit-when-running: how long to wait, e.g. 90s, 2m (default 2m; 10m with vllm)",
    )
    sandbox.add_argument(
        "--chaos",
        action="store_true",
        help="inject engine faults and delete a serving pod, to show retries and the heal",
    )
    sandbox.add_argument("--seed", metavar="N", help="with --chaos: the seed that picks the faults (default random)")
    sandbox.add_argument(
        "--first-pod-ip",
        metavar="IP",
        help="the first pod's loopback address; the others follow it (default 127.0.0.2)",
    )
    sandbox.add_argument(
        "--runtime",
        metavar="aibrix|none",
        help="aibrix: AIBrix's real runtime beside each engine and a local S3 store the sample is downloaded from "
        "(.ci/prepare/40-aibrix-runtime); default none",
    )
    sandbox.add_argument(
        "--gateway",
        metavar="HOST:PORT|off",
        help="where the Envoy gateway listens, routing requests by the body's model (default 127.0.0.1:8888); "
        "off: no gateway",
    )
    sandbox.add_argument("--state-dir", metavar="DIR",
                         help="kubeconfig, event log, operator log and sample artifacts (default ./.modeladapter)")  # fmt: skip


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
    from modeladapter.operator.controller.running import run_operator

    configure_logging(level=settings.log_level, fmt=settings.log_format)
    try:
        return asyncio.run(run_operator(settings))
    except KeyboardInterrupt:
        return 130


def _manifests(args: argparse.Namespace) -> int:
    try:
        documents = operator_manifests(
            args.base, namespace=args.namespace, image=args.image, without_crds=args.without_crds
        )
    except ManifestError as error:
        print(f"modeladapter manifests: {error}", file=sys.stderr)
        return USAGE_ERROR
    sys.stdout.write(render_manifests(documents))
    return 0


def _version() -> str:
    try:
        return version("modeladapter")
    except PackageNotFoundError:  # pragma: no cover - only from a checkout that is not installed
        return "unknown (not installed)"


def _completion(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        script = completion_script(parser, args.shell, prog=args.prog)
    except CompletionError as error:
        print(f"{program_name()} completion: {error}", file=sys.stderr)
        return USAGE_ERROR
    sys.stdout.write(script)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "completion":
        return _completion(parser, args)
    if args.command == "run":
        return _run(args)
    if args.command == "manifests":
        return _manifests(args)
    if args.command == "sandbox":
        # The composition root's one import of the sandbox layer, made here so that no other command loads it.
        from modeladapter.sandbox.command import run_sandbox

        return run_sandbox(args)
    if args.command in AUDIT_COMMANDS:
        return run_audit_command(args, prog=program_name())
    url = _database_url(args)
    try:
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
