"""The audit commands on the command line: `history`, `events`, `replay`, `verify`, `stuck`, `stats`.

Each reads the event log (and `verify` the cluster), never writes to either, and prints a table (the default)
or a JSON or YAML document (`-o json|yaml`; shapes in `modeladapter.operator.audit.rendering`); the listings
also take `-o wide` and `-o name` where kubectl's would (`modeladapter.operator.cli.listing`). Without `-n`,
the namespace is the kubeconfig context's, else `default` (`modeladapter.operator.cli.kubecontext`); in a pod
without a kubeconfig, the service account's (`modeladapter.operator.cli.incluster`). Arguments
are checked here, so that every bad input ends as one line on stderr and exit status 2 (`AuditError`); argparse
itself only handles unknown flags. `verify` exits 1 when it finds drift. Inside a pod, with no kubeconfig,
`verify` connects with the pod's service account, as `modeladapter run` does.

`modeladapter.operator.cli.main` registers the subcommands (`add_audit_commands`) and dispatches to `run_audit_command`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO, TypeAlias

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from modeladapter.fsm.events import EVENT_TYPES
from modeladapter.operator.audit import auditing, rendering, reports, verifying
from modeladapter.operator.audit.eventlog import AuditError, open_event_log
from modeladapter.operator.audit.rendering import OUTPUT_FORMATS, OutputFormat
from modeladapter.operator.cli import listing
from modeladapter.operator.cli.completion import Suggested
from modeladapter.operator.cli.incluster import connect_in_cluster, in_a_pod, pod_namespace
from modeladapter.operator.cli.kubecontext import (
    FALLBACK_NAMESPACE,
    KubeconfigError,
    context_namespace,
    listed_kubeconfigs,
)
from modeladapter.operator.cli.timeinput import TIME_HELP, TimeInputError, parse_duration, parse_time
from modeladapter.store import DEFAULT_DATABASE_URL, SqlEventStore, StoreError
from modeladapter.store.engine import redact_url
from modeladapter.store.queries import EventFilter, find_events, follow_events, last_position

AUDIT_COMMANDS: Final = ("history", "events", "replay", "verify", "stuck", "stats")
USAGE_ERROR: Final = 2
DRIFT: Final = 1
INTERRUPTED: Final = 130
DEFAULT_STUCK_FOR: Final = "5m"
FOLLOW_POLL_SECONDS: Final = 0.5
MAX_LIMIT: Final = 2**63 - 1
"""The largest `--limit` a database takes (a 64-bit integer); a larger one means the same: everything."""
_MAX_LIMIT_DIGITS: Final = len(str(MAX_LIMIT))
_DIGITS: Final = re.compile(r"[0-9]+")  # ASCII only: str.isdigit also takes "²", which int() refuses

Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_audit_commands(commands: Subcommands, *, database: argparse.ArgumentParser) -> None:
    """Add the six subcommands; `database` is the parent parser that holds `--database-url`."""
    namespace = argparse.ArgumentParser(add_help=False)
    namespace.add_argument(
        "-n", "--namespace",
        help="the adapters' namespace (default: the kubeconfig context's, as kubectl's; else default)",
    )  # fmt: skip
    every = argparse.ArgumentParser(add_help=False)
    every.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace (overrides -n)")
    parents = [database, namespace, _output_flag()]

    history = commands.add_parser(
        "history",
        parents=parents,
        help="an adapter's phase timeline, with retries and pod switches",
        description="The phase timeline of one ModelAdapter from the event log: when it entered each phase, "
        "why, and how long it stayed (the current phase up to now, marked ongoing), with failed loads, "
        "exhausted pods, pod switches and lost pods between the phases. Every incarnation of a name that was "
        "deleted and re-created is shown, oldest first.",
    )
    history.add_argument("name", metavar="NAME", help="the ModelAdapter's name")
    history.add_argument("--uid", help="only the incarnation with this uid")

    events = commands.add_parser(
        "events",
        parents=[database, namespace, _output_flag("events"), every],
        help="the events of the log, filtered; --follow tails it",
        description="Events from the log in the order they were recorded, one line of English each. "
        f"Times (--since, --until): {TIME_HELP}.",
    )
    events.add_argument("--adapter", metavar="NAME", help="one ModelAdapter (every incarnation of the name)")
    events.add_argument(
        "--type", action="append", default=[], metavar="TYPE", help="only this event type (repeat for several)"
    )
    events.add_argument("--pod", metavar="POD", help="events that name this pod (PodSwitched: from or to)")
    events.add_argument("--since", metavar="TIME", help="recorded at or after TIME")
    events.add_argument(
        "--until", metavar="TIME",
        help="recorded at or before TIME, all of its last digit (21:04:05.123Z: up to 21:04:05.123999)",
    )  # fmt: skip
    events.add_argument("--limit", metavar="N", help="only the newest N events (with --follow: of the backlog)")
    events.add_argument(
        "-f", "--follow", action="store_true",
        help="then print new events as they are appended, until Ctrl-C (json: one object per line; "
        "yaml: one document each)",
    )  # fmt: skip

    replay = commands.add_parser(
        "replay",
        parents=parents,
        help="an adapter's state as of a moment, from the log alone",
        description="The state of one ModelAdapter as of TIME: the fold of the events its stream had recorded "
        f"by then. TIME: {TIME_HELP}. A moment before the adapter existed is an error (exit 2).",
    )
    replay.add_argument("name", metavar="NAME", help="the ModelAdapter's name")
    replay.add_argument(
        "--at", metavar="TIME", default="now",
        help="the moment (default: now); all of its last digit, so that a time copied from a table (milliseconds) "
        "includes the events shown at it",
    )  # fmt: skip
    replay.add_argument("--uid", help="this incarnation (default: the newest one created by TIME)")
    replay.add_argument(
        "--step", action="store_true", help="walk the events one at a time, each with the state change it caused"
    )

    verify = commands.add_parser(
        "verify",
        parents=[database, namespace, _output_flag("verify"), every],
        help="compare the log with the cluster; exit 1 on drift",
        description="Fold every live stream and compare it with what the cluster shows: phase, instances, "
        "readyReplicas, observedGeneration, placements and conditions (as the operator's own projection of "
        "the log would write them), and adapters only one side knows. Prints each drift and exits 1 if there "
        "is any, 0 if none. The operator appends to the log first and writes the status right after, so a "
        "verify that races an active operator may see a drift that is gone a moment later; drifts on an "
        "adapter whose log moved on during the check say so. Re-run: a drift that persists is real.",
    )
    verify.add_argument(
        "--kubeconfig", type=Path,
        help="default: $KUBECONFIG, else ./.modeladapter/kubeconfig (the sandbox's) if it exists, else ~/.kube/config, "
        "else (inside a pod) the pod's service account",
    )  # fmt: skip
    verify.add_argument("--context", help="the kubeconfig context (default: its current context)")
    verify.add_argument(
        "--engines",
        action="store_true",
        help="also ask each engine the log placed an adapter on (GET /v1/models) whether it serves what the log "
        "says, deleted adapters included; pod IPs must be reachable from where it runs (inside the cluster)",
    )

    stuck = commands.add_parser(
        "stuck",
        parents=[database, namespace, _output_flag("stuck"), every],
        help="adapters in one phase (not Running) for too long",
        description="Live adapters that have been in one phase other than Running for longer than --for, "
        "longest first, with the reason, the message and the last error.",
    )
    stuck.add_argument(
        "--for", dest="longer_than", default=DEFAULT_STUCK_FOR, metavar="DURATION",
        help=f"e.g. 90s, 5m, 2h, 1d (default {DEFAULT_STUCK_FOR})",
    )  # fmt: skip

    commands.add_parser(
        "stats",
        parents=[database, namespace, _output_flag(), every],
        help="time-in-phase percentiles, retries, pod switches and losses",
        description="Across adapters: p50/p90/p99/max of the time spent in each phase (every completed stay "
        "in the log), failed loads, pod switches and pod losses per adapter, and adapters per current phase.",
    )


def _output_flag(command: str | None = None) -> argparse.ArgumentParser:
    """`-o/--output` with the formats `command` takes: table, json, yaml, and its `listing.EXTRA_OUTPUTS`."""
    formats = (*OUTPUT_FORMATS, *listing.EXTRA_OUTPUTS.get(command or "", ()))
    extra = {
        "wide": "wide (more columns)",
        "name": f"name ({listing.RESOURCE}/NAME lines)",
    }
    described = ", ".join(extra.get(f, f) for f in formats[1:])
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "-o", "--output", default="table", choices=Suggested(formats), metavar="|".join(formats),
        help=f"table (default), {described}",
    )  # fmt: skip
    return parent


def run_audit_command(args: argparse.Namespace, *, prog: str, out: TextIO | None = None) -> int:
    """Run one audit command; its exit status. Bad input and bad logs are one line on stderr and status 2."""
    out = out or sys.stdout
    label = f"{prog} {args.command}"
    url = str(args.database_url or os.environ.get("MODELADAPTER_DATABASE_URL") or DEFAULT_DATABASE_URL)
    try:
        _check_text(args, url)
        formats = (*OUTPUT_FORMATS, *listing.EXTRA_OUTPUTS.get(args.command, ()))
        if args.output not in formats:
            raise AuditError(f"-o/--output: must be one of {', '.join(formats)}, got {args.output!r}")
        if args.command != "verify":  # verify reads the kubeconfig's namespace once it has connected with it
            args.namespace = _default_namespace(args)
        command = _COMMANDS[args.command]
        return asyncio.run(command(args, url, out))
    except AuditError as error:
        _complain(f"{label}: {error}")
        return USAGE_ERROR
    except (OSError, SQLAlchemyError, StoreError) as error:
        detail = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
        _complain(f"{label}: cannot read the event log {redact_url(url)}: {_one_line(detail)}")
        return USAGE_ERROR
    except (ValueError, TypeError, ArithmeticError, LookupError, RecursionError) as error:
        # Arguments are checked before this, and rows are decoded by the audit codec; what is left is a stored
        # value that cannot be read at all (a time or uid column that is not one): the log is damaged.
        _complain(
            f"{label}: cannot read the event log {redact_url(url)}: a stored value is unreadable: {_one_line(error)}"
        )
        return USAGE_ERROR
    except KeyboardInterrupt:  # Ctrl-C during a one-shot command: nothing was written, nothing to report
        return INTERRUPTED


def _complain(message: str) -> None:
    """`message` on stderr as exactly one line, whatever a log or an argument put in it (newlines, escapes)."""
    escaped = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in message)
    print(escaped, file=sys.stderr)


_FLAGS: Final = {"name": "NAME", "namespace": "-n/--namespace", "longer_than": "--for", "output": "-o/--output"}


def _check_text(args: argparse.Namespace, url: str) -> None:
    """Refuse an argument that no log can hold: a NUL character, or bytes that are not UTF-8 (from the shell)."""
    given = [(dest, value) for dest, value in vars(args).items() if isinstance(value, str | Path)]
    given += [(dest, item) for dest, value in vars(args).items() if isinstance(value, list) for item in value]
    for dest, value in [*given, ("database_url", url)]:
        text = str(value)
        flag = _FLAGS.get(dest, "--" + dest.replace("_", "-"))
        if "\x00" in text:
            raise AuditError(f"{flag}: {text!r} contains a NUL character")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise AuditError(f"{flag}: {text!r} is not valid UTF-8") from None


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _now() -> datetime:
    return datetime.now(UTC)


def _time(flag: str, text: str, now: datetime, *, end: bool = False) -> datetime:
    try:
        return parse_time(text, now=now, end=end)
    except TimeInputError as error:
        raise AuditError(f"{flag}: {error}") from None


def _default_namespace(args: argparse.Namespace) -> str:
    """`-n`; else, in a pod without a kubeconfig, the service account's; else the kubeconfig context's."""
    if args.namespace is not None:
        return str(args.namespace)
    if getattr(args, "all_namespaces", False):
        return FALLBACK_NAMESPACE  # not used: -A reads every namespace
    if _in_cluster(args):
        return pod_namespace()
    try:
        return context_namespace(_kubeconfigs(args), getattr(args, "context", None))
    except KubeconfigError as error:
        raise AuditError(str(error)) from None


def _kubeconfigs(args: argparse.Namespace) -> list[Path]:
    """`--kubeconfig`, else the files `$KUBECONFIG` lists, else the one `verify` would use by default."""
    explicit: Path | None = getattr(args, "kubeconfig", None)
    return [explicit] if explicit else listed_kubeconfigs() or [verifying.default_kubeconfig()]


def _in_cluster(args: argparse.Namespace) -> bool:
    """In a pod, with no kubeconfig asked for or found: the pod's service account stands in for one."""
    if getattr(args, "kubeconfig", None) is not None or getattr(args, "context", None) is not None:
        return False
    return not any(path.is_file() for path in _kubeconfigs(args)) and in_a_pod()


def _output(args: argparse.Namespace) -> OutputFormat:
    output: OutputFormat = args.output
    return output


def _namespace(args: argparse.Namespace) -> str | None:
    return None if getattr(args, "all_namespaces", False) else str(args.namespace)


async def _history(args: argparse.Namespace, url: str, out: TextIO) -> int:
    async with open_event_log(url) as store:
        result = await auditing.history(store, namespace=args.namespace, name=args.name, now=_now(), uid=args.uid)
    output = _output(args)
    out.write(
        rendering.history_table(result)
        if output == "table"
        else rendering.dump(rendering.history_document(result), output)
    )
    return 0


async def _events(args: argparse.Namespace, url: str, out: TextIO) -> int:
    now = _now()
    unknown = sorted(set(args.type) - EVENT_TYPES)
    if unknown:
        raise AuditError(
            f"--type: unknown event type {', '.join(unknown)}; valid types: {', '.join(sorted(EVENT_TYPES))}"
        )
    limit: int | None = None
    if args.limit is not None:
        digits = args.limit.strip()
        significant = digits.lstrip("0")
        if _DIGITS.fullmatch(digits) is None or not significant:
            raise AuditError(f"--limit: expected a whole number of events, at least 1, got {args.limit!r}")
        # More than any log holds is all of it; no database takes a larger number (and int() refuses 4,300 digits).
        limit = MAX_LIMIT if len(significant) > _MAX_LIMIT_DIGITS else min(int(significant), MAX_LIMIT)
    if args.follow and args.until is not None:
        raise AuditError("--until and --follow do not go together: following never ends at a time")
    selection = EventFilter(
        namespace=_namespace(args),
        name=args.adapter,
        types=tuple(sorted(set(args.type))),
        pod=args.pod,
        since=_time("--since", args.since, now) if args.since is not None else None,
        until=_time("--until", args.until, now, end=True) if args.until is not None else None,
    )
    wide = args.output == "wide"
    output: OutputFormat = "table" if wide else _output(args)
    async with open_event_log(url) as store:
        if not args.follow:
            found = await auditing.events(store, selection, limit=limit)
            if wide:
                out.write(listing.events_wide(found))
            elif output == "table":
                out.write(rendering.events_table(found))
            else:
                out.write(rendering.dump([rendering.event_document(e) for e in found], output))
            return 0
        return await _follow(store, selection, limit, output, out, wide=wide)


async def _follow(
    store: SqlEventStore,
    selection: EventFilter,
    limit: int | None,
    output: OutputFormat,
    out: TextIO,
    *,
    wide: bool = False,
) -> int:
    """Print the backlog, then every new event, until SIGINT or SIGTERM; exit status 0."""
    await auditing.check_selection(store, selection)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def write(events: list[Any]) -> None:
        for event in events:
            if wide:
                out.write(listing.event_wide_line(event))
            elif output == "table":
                out.write(rendering.event_line(event))
            else:
                out.write(rendering.dump_one_line(rendering.event_document(event), output))
        out.flush()

    batches = None
    stopping = asyncio.ensure_future(stop.wait())
    try:
        start = await last_position(store)
        if wide:
            out.write(listing.events_wide_header())
        elif output == "table":
            out.write(rendering.format_row(rendering.EVENT_HEADERS, rendering.EVENT_MIN_WIDTHS) + "\n")
        write(await find_events(store, replace(selection, upto_position=start), limit=limit))
        batches = follow_events(store, selection, after_position=start, poll_interval=FOLLOW_POLL_SECONDS)
        while True:
            following = asyncio.ensure_future(anext(batches))
            done, _ = await asyncio.wait({following, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if following in done:
                write(following.result())
                continue
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)
            return 0
    finally:
        stopping.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        if batches is not None:
            await batches.aclose()


async def _replay(args: argparse.Namespace, url: str, out: TextIO) -> int:
    at = _time("--at", args.at, _now(), end=True)
    async with open_event_log(url) as store:
        result = await auditing.replay(
            store, namespace=args.namespace, name=args.name, at=at, uid=args.uid, step=args.step
        )
    output = _output(args)
    out.write(
        reports.replay_table(result) if output == "table" else rendering.dump(reports.replay_document(result), output)
    )
    return 0


async def _verify(args: argparse.Namespace, url: str, out: TextIO) -> int:
    kubeconfig = args.kubeconfig or verifying.default_kubeconfig()
    cluster = connect_in_cluster() if _in_cluster(args) else verifying.connect_cluster(kubeconfig, args.context)
    async with open_event_log(url) as store, cluster as kube:
        args.namespace = _default_namespace(args)
        result = await verifying.verify(store, kube, namespace=_namespace(args), now=_now(), engines=args.engines)
    if args.output == "name":
        out.write(listing.names(listing.drifted(result)))
        return DRIFT if result.drifts else 0
    output = _output(args)
    out.write(
        reports.verification_table(result)
        if output == "table"
        else rendering.dump(reports.verification_document(result), output)
    )
    return DRIFT if result.drifts else 0


async def _stuck(args: argparse.Namespace, url: str, out: TextIO) -> int:
    try:
        longer_than = parse_duration(args.longer_than)
    except TimeInputError as error:
        raise AuditError(f"--for: {error}") from None
    now = _now()
    try:
        now - longer_than
    except OverflowError:
        raise AuditError(f"--for: {args.longer_than!r} reaches back before the year 1") from None
    async with open_event_log(url) as store:
        found = await auditing.stuck(store, longer_than=longer_than, namespace=_namespace(args), now=now)
    if args.output == "name":
        out.write(listing.names([(s.namespace, s.name) for s in found]))
        return 0
    if args.output == "wide":
        out.write(reports.stuck_table(found, longer_than=longer_than, wide=True))
        return 0
    output = _output(args)
    out.write(
        reports.stuck_table(found, longer_than=longer_than)
        if output == "table"
        else rendering.dump(reports.stuck_document(found), output)
    )
    return 0


async def _stats(args: argparse.Namespace, url: str, out: TextIO) -> int:
    async with open_event_log(url) as store:
        result = await auditing.stats(store, namespace=_namespace(args))
    output = _output(args)
    out.write(
        reports.stats_table(result) if output == "table" else rendering.dump(reports.stats_document(result), output)
    )
    return 0


_COMMANDS: Final[dict[str, Callable[[argparse.Namespace, str, TextIO], Coroutine[Any, Any, int]]]] = {
    "history": _history,
    "events": _events,
    "replay": _replay,
    "verify": _verify,
    "stuck": _stuck,
    "stats": _stats,
}
