"""Fuzzed: damaged logs and hostile arguments never make an audit command print a traceback.

Each example runs one command in this process (`main(argv)`, as the console script does) and must end with exit
status 0 (answered), 1 (`verify`: drift) or 2 (refused); a refusal of ours is exactly one line on stderr, and
argparse's own refusals (an unknown flag, a value it takes for one) are status 2 too. Nothing else may escape.

* Damaged logs: a copy of a small log (`tests.audit.logs.write_log`, SQLite, where a hand edit can put anything
  in any column) with one to four cells rewritten or rows deleted: payloads that are not JSON, not objects or
  miss fields, unknown event types and schema versions, times, uids and versions that are not, version gaps, and
  stream rows that disagree with their events. Every command reads each.
* Hostile arguments: names, namespaces, uids, pods, types, times, durations, limits and formats drawn from text
  with NUL, lone surrogates (what the shell hands over for bytes that are not UTF-8), newlines, escapes, quotes,
  non-ASCII digits, and from times at and beyond the ends of the date range in every UTC offset.

`MODELADAPTER_FUZZ_EXAMPLES` sets the examples per test (default 100; about 3 s each here).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeladapter.fsm.events import EVENT_TYPES
from modeladapter.operator.cli.main import main
from tests.audit.logs import sqlite_path, write_log

EXAMPLES = int(os.environ.get("MODELADAPTER_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
EVENTS_IN_LOG = 23
"""Positions 1..23 in `write_log`'s log: default/chaos 1-17, team-b/waiting 18-19, default/gone 20-23."""
STREAMS = ("uid-chaos", "uid-waiting", "uid-gone")


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str
    by_argparse: bool


def run(argv: list[str]) -> Outcome:
    """`main(argv)` in this process: its status and output; any exception but argparse's SystemExit fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse: a usage and one line of error, status 2
            return Outcome(int(exit_.code or 0), out.getvalue(), err.getvalue(), by_argparse=True)
    return Outcome(code, out.getvalue(), err.getvalue(), by_argparse=False)


def check(outcome: Outcome, argv: list[str]) -> None:
    allowed = {0, 1, 2} if argv[0] == "verify" else {0, 2}
    assert outcome.code in allowed, (argv, outcome)
    assert "Traceback" not in outcome.err, (argv, outcome.err)
    if outcome.code == 2 and not outcome.by_argparse:
        assert outcome.out == "" and outcome.err.count("\n") == 1 and outcome.err.endswith("\n"), (argv, outcome)
        assert outcome.err.startswith(f"modeladapter {argv[0]}: "), (argv, outcome.err)


class Logs:
    """A pristine log, and fresh copies of it to damage."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pristine = sqlite_path(write_log(f"sqlite:///{directory}/pristine.db"))
        self.copies = itertools.count()

    def copy(self) -> Path:
        target = self.directory / f"copy-{next(self.copies)}.db"
        shutil.copyfile(self.pristine, target)
        return target


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Logs]:
    yield Logs(tmp_path_factory.mktemp("fuzzed-logs"))


# --- damaged logs -------------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=8,
)
sql_values = (
    st.none()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.text(max_size=40)
    | st.binary(max_size=16)
    | st.sampled_from(["2026-11-26 21:04:05.000000", "0001-01-01 00:00:00", "9999-12-31 23:59:59.999999", ""])
)
payloads = (
    st.text(max_size=40)  # mostly not JSON
    | json_values.map(json.dumps)
    | st.fixed_dictionaries({"pod": st.text(max_size=8)}, optional={"attempt": json_values}).map(json.dumps)
    | st.just("[" * 5000)  # deeper than a JSON decoder recurses
)
event_columns = st.sampled_from(["version", "position", "event_id", "type", "schema_version", "recorded_at",
                                 "reconcile_id", "observed_generation", "stream_id"])  # fmt: skip
stream_columns = st.sampled_from(["version", "phase", "phase_since", "finalized_at", "created_at", "namespace", "name"])
positions = st.integers(1, EVENTS_IN_LOG)

damages = st.one_of(
    st.tuples(st.just("UPDATE adapter_events SET payload = :value WHERE position = :at"), payloads, positions),
    st.tuples(st.just("DELETE FROM adapter_events WHERE position = :at"), st.none(), positions),
    st.tuples(
        st.just("UPDATE adapter_events SET type = :value WHERE position = :at"),
        st.sampled_from(sorted(EVENT_TYPES)) | st.text(max_size=20),
        positions,
    ),  # fmt: skip
    st.tuples(
        event_columns.map(lambda c: f"UPDATE adapter_events SET {c} = :value WHERE position = :at"),
        sql_values,
        positions,
    ),  # fmt: skip
    st.tuples(
        stream_columns.map(lambda c: f"UPDATE adapter_streams SET {c} = :value WHERE stream_id = :at"),
        sql_values | st.sampled_from(["Pending", "Running", "Loading", "Limbo"]),
        st.sampled_from(STREAMS),
    ),  # fmt: skip
)
READING_COMMANDS = [
    ["history", "chaos"],
    ["history", "waiting", "-n", "team-b"],
    ["events", "-A"],
    ["events", "--pod", "pod-a", "-o", "json"],
    ["events", "--type", "PhaseChanged", "--limit", "3", "-o", "yaml"],
    ["replay", "chaos", "--step"],
    ["replay", "gone", "--at", "now"],
    ["verify", "-A"],
    ["stuck", "--for", "0s", "-A"],
    ["stats", "-A", "-o", "json"],
]


@FUZZ
@given(st.lists(damages, min_size=1, max_size=4), st.sampled_from(READING_COMMANDS))
def test_damaged_logs_never_make_a_command_print_a_traceback(
    logs: Logs, empty_cluster: Path, damage: list[tuple[str, Any, Any]], argv: list[str]
) -> None:
    path = logs.copy()
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        for statement, value, at in damage:
            with contextlib.suppress(sqlite3.IntegrityError):  # a damage the schema itself refuses: no damage
                connection.execute(statement, {"value": value, "at": at})
    kubeconfig = ["--kubeconfig", str(empty_cluster)] if argv[0] == "verify" else []
    command = [*argv, *kubeconfig, "--database-url", f"sqlite:///{path}"]
    check(run(command), command)
    path.unlink()


# --- hostile arguments --------------------------------------------------------------------------------------------

hostile_text = st.text(
    st.characters(codec=None) | st.sampled_from(["\x00", "\udcff", "\ud800", "\n", "\r", "\x1b", "'", '"', "%", "\\",
                                                 "²", "٣", "∞", "-", ":", "T", "Z", "+"]),
    max_size=30,
)  # fmt: skip
offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
    lambda m: f"{'+' if m >= 0 else '-'}{abs(m) // 60:02}:{abs(m) % 60:02}"
)
edge_dates = st.sampled_from(["0001-01-01", "0001-01-02", "9999-12-30", "9999-12-31", "2026-11-26", "2024-02-29"])
times = (
    hostile_text
    | st.tuples(
        edge_dates,
        st.sampled_from(["", "T00:00", "T00:00:00", "T23:59:59.999999", "T12:00:00.5"]),
        st.sampled_from(["", "Z", "z"]) | offsets,
    ).map("".join)  # fmt: skip
    | st.tuples(st.integers(0, 10**15), st.sampled_from(["", "ms", "s", "m", "h", "d"])).map(lambda p: f"{p[0]}{p[1]}")
    | st.sampled_from(["now", "nan", "inf", "-inf", "1e400s", "99999999999d", "0.0000001ms"])
)
limits = hostile_text | st.integers(-5, 10**40).map(str) | st.just("9" * 5000)
names = hostile_text | st.sampled_from(["chaos", "waiting", "gone"])


@st.composite
def hostile_arguments(draw: st.DrawFn) -> list[str]:
    """A command with hostile values, each as `--flag=value` so that a value starting with - stays a value."""
    command = draw(st.sampled_from(["history", "events", "replay", "verify", "stuck", "stats"]))
    options = [f"--namespace={draw(names)}"] if draw(st.booleans()) else []
    if draw(st.booleans()):
        options.append(f"--output={draw(st.sampled_from(['table', 'json', 'yaml']) | hostile_text)}")
    if command in ("history", "replay") and draw(st.booleans()):
        options.append(f"--uid={draw(hostile_text)}")
    if command == "replay":
        options += [f"--at={draw(times)}"] + (["--step"] if draw(st.booleans()) else [])
    if command == "events":
        for flag, values in (
            ("--adapter", names),
            ("--pod", hostile_text),
            ("--since", times),
            ("--until", times),
            ("--limit", limits),
            ("--type", st.sampled_from(sorted(EVENT_TYPES)) | hostile_text),
        ):
            if draw(st.booleans()):
                options.append(f"{flag}={draw(values)}")  # fmt: skip
    if command == "stuck":
        options.append(f"--for={draw(times)}")
    if command in ("events", "verify", "stuck", "stats") and draw(st.booleans()):
        options.append("--all-namespaces")
    positional = ["--", draw(names)] if command in ("history", "replay") else []
    return [command, *options, *positional]


@FUZZ
@given(hostile_arguments())
def test_hostile_arguments_never_make_a_command_print_a_traceback(
    logs: Logs, empty_cluster: Path, argv: list[str]
) -> None:
    command, *rest = argv
    kubeconfig = [f"--kubeconfig={empty_cluster}"] if command == "verify" else []
    full = [command, f"--database-url=sqlite:///{logs.pristine}", *kubeconfig, *rest]
    check(run(full), full)
