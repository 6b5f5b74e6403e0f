"""Bad input to the audit commands: one line on stderr naming the problem, exit status 2, never a traceback.

Unknown adapters, unreadable times and durations, unusable output formats and limits, and event logs that
cannot be read (unreachable, missing, empty, from a newer version). Reading never creates or changes a file.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import sqlite3
from pathlib import Path
from subprocess import PIPE, Popen

import pytest
from sqlalchemy import text

from modeladapter import migrations
from modeladapter.store import create_engine
from tests.audit.conftest import (
    MODELADAPTER,
    Databases,
    ProducedLog,
    Run,
    copy_log,
    one_line_error,
    sandbox_environment,
    small_log,
)

COMMANDS = [
    ("history", "chaos"),
    ("events",),
    ("replay", "chaos"),
    ("verify",),
    ("stuck",),
    ("stats",),
]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _assert_one_line(code: int, out: str, err: str) -> str:
    assert (code, out) == (2, ""), (code, out, err)
    assert err.count("\n") == 1 and err.endswith("\n") and "Traceback" not in err, err
    return err.rstrip("\n")


# --- adapters -------------------------------------------------------------------------------------------------


def test_an_unknown_adapter_names_it_and_what_the_log_has(produced_log: ProducedLog, modeladapter: Run) -> None:
    url = ("--database-url", produced_log.database_url)
    for argv in (("history", "chaoss"), ("replay", "chaoss"), ("events", "--adapter", "chaoss")):
        error = one_line_error(modeladapter(*argv, *url))
        assert error.startswith(f"modeladapter {argv[0]}: no ModelAdapter default/chaoss in the event log")
        assert "nearby names in default: chaos" in error
    elsewhere = one_line_error(modeladapter("replay", "broken", *url))
    assert "broken exists in namespace team-b (use -n)" in elsewhere
    nowhere = one_line_error(modeladapter("history", "chaos", "-n", "team-c", *url))
    assert "the log has no adapters in namespace team-c" in nowhere
    following = one_line_error(modeladapter("events", "--follow", "--adapter", "chaoss", *url))
    assert "no ModelAdapter default/chaoss" in following


# --- times, durations, formats and limits ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, flag",
    [
        (("replay", "chaos", "--at", "yesterday"), "--at"),
        (("replay", "chaos", "--at", "2026-13-45T25:00:00Z"), "--at"),
        (("replay", "chaos", "--at=-5m"), "--at"),
        (("events", "--since", "5 minutes ago"), "--since"),
        (("events", "--until", "tomorrow"), "--until"),
        (("events", "--since", "99999999999d"), "--since"),
        (("stuck", "--for", "forever"), "--for"),
        (("stuck", "--for=-5m"), "--for"),
        (("stuck", "--for", "2026-11-26T21:04:05Z"), "--for"),
    ],
)
def test_a_time_or_duration_that_cannot_be_read_says_what_is_accepted(
    produced_log: ProducedLog, modeladapter: Run, argv: tuple[str, ...], flag: str
) -> None:
    error = one_line_error(modeladapter(*argv, "--database-url", produced_log.database_url))
    assert error.startswith(f"modeladapter {argv[0]}: {flag}: cannot read ")
    assert "use e.g." in error and "5m" in error


@pytest.mark.parametrize(
    "argv, expected",
    [
        (("events", "-o", "xml"), "-o/--output: must be one of table, json, yaml, wide, got 'xml'"),
        (("stats", "--output", "csv"), "-o/--output: must be one of table, json, yaml, got 'csv'"),
        (("events", "--limit", "-3"), "--limit: expected a whole number of events, at least 1, got '-3'"),
        (("events", "--limit=-3"), "--limit: expected a whole number of events, at least 1, got '-3'"),
        (("events", "--limit", "0"), "--limit: expected a whole number of events, at least 1, got '0'"),
        (("events", "--limit", "ten"), "--limit: expected a whole number of events, at least 1, got 'ten'"),
        (("events", "--type", "LoadFailure"), "--type: unknown event type LoadFailure; valid types: AdapterMissing"),
        (("events", "--follow", "--until", "now"), "--until and --follow do not go together"),
        (("history", "reborn", "--uid", "nope"), "default/reborn has no incarnation with uid nope"),
    ],
)
def test_a_bad_format_limit_type_or_combination_is_one_line(
    produced_log: ProducedLog, modeladapter: Run, argv: tuple[str, ...], expected: str
) -> None:
    error = one_line_error(modeladapter(*argv, "--database-url", produced_log.database_url))
    assert error.startswith(f"modeladapter {argv[0]}: {expected}")


# --- event logs that cannot be read ---------------------------------------------------------------------------


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: argv[0])
def test_an_unreachable_postgresql_is_one_line(modeladapter: Run, argv: tuple[str, ...], tmp_path: Path) -> None:
    url = f"postgresql://postgres:secret@127.0.0.1:{_closed_port()}/test"
    kubeconfig = ("--kubeconfig", str(tmp_path / "unused")) if argv[0] == "verify" else ()
    error = one_line_error(modeladapter(*argv, *kubeconfig, "--database-url", url))
    assert error.startswith(f"modeladapter {argv[0]}: cannot read the event log postgresql://postgres:***@127.0.0.1:")
    assert "secret" not in error and "Connect call failed" in error


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: argv[0])
def test_a_sqlite_path_with_no_file_is_refused_and_nothing_is_created(
    modeladapter: Run, argv: tuple[str, ...], tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-dir" / "events.db"
    error = one_line_error(modeladapter(*argv, "--database-url", f"sqlite:///{missing}"))
    assert error.startswith(f"modeladapter {argv[0]}: no event log at {missing}: nothing has been recorded there")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_sqlite_file_or_one_without_an_event_log_is_refused_and_left_as_it_was(
    modeladapter: Run, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE unrelated (x INTEGER)")
    connection.close()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for path in (empty, other):
        for argv in COMMANDS:
            kubeconfig = ("--kubeconfig", str(tmp_path / "unused")) if argv[0] == "verify" else ()
            error = one_line_error(modeladapter(*argv, *kubeconfig, "--database-url", f"sqlite:///{path}"))
            assert f"sqlite:///{path} holds no event log yet (no tables, no schema revision)" in error
            assert f"modeladapter db upgrade --database-url sqlite:///{path}" in error
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    junk = tmp_path / "junk.db"
    junk.write_text("not a database\n")
    assert one_line_error(modeladapter("stats", "--database-url", f"sqlite:///{junk}")).endswith(
        "is not a SQLite database, so not an event log"
    )


@pytest.mark.postgres
def test_a_fresh_postgresql_database_is_refused_and_left_empty(modeladapter: Run, tmp_path: Path) -> None:
    databases = Databases("postgres", tmp_path)
    try:
        url = databases.new()
        for argv in COMMANDS:
            kubeconfig = ("--kubeconfig", str(tmp_path / "unused")) if argv[0] == "verify" else ()
            assert "holds no event log yet" in one_line_error(modeladapter(*argv, *kubeconfig, "--database-url", url))

        async def tables() -> list[str]:
            engine = create_engine(url)
            try:
                async with engine.connect() as connection:
                    found = await connection.execute(
                        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                    )
                    return [str(row[0]) for row in found]
            finally:
                await engine.dispose()

        assert asyncio.run(tables()) == []
    finally:
        databases.drop_all()


def test_a_log_migrated_by_a_newer_version_is_refused(
    produced_log: ProducedLog, modeladapter: Run, databases: Databases
) -> None:
    url = copy_log(produced_log.database_url, databases)

    async def stamp() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))
        finally:
            await engine.dispose()

    asyncio.run(stamp())
    for argv in COMMANDS:
        kubeconfig = ("--kubeconfig", str(produced_log.kubeconfig)) if argv[0] == "verify" else ()
        error = one_line_error(modeladapter(*argv, *kubeconfig, "--database-url", url))
        assert "is at schema revision '0099_from_the_future', which this modeladapter does not know" in error
        assert f"newest known: '{migrations.head_revision()}'" in error and error.endswith("Upgrade modeladapter.")


def test_an_unsupported_or_unparseable_url_is_one_line(modeladapter: Run) -> None:
    assert "unsupported database 'mysql'" in one_line_error(
        modeladapter("stats", "--database-url", "mysql://root@localhost/x")
    )
    assert "not a database URL" in one_line_error(modeladapter("stats", "--database-url", "::::"))


# --- the cluster, for verify ----------------------------------------------------------------------------------


def test_verify_without_a_usable_cluster_is_one_line(
    produced_log: ProducedLog, modeladapter: Run, tmp_path: Path
) -> None:
    url = ("--database-url", produced_log.database_url)
    missing = one_line_error(modeladapter("verify", "--kubeconfig", str(tmp_path / "none"), *url))
    assert missing == f"modeladapter verify: no kubeconfig at {tmp_path / 'none'}; pass --kubeconfig or set KUBECONFIG"
    closed = tmp_path / "closed"
    port = _closed_port()
    closed.write_text(produced_log.kubeconfig.read_text().replace(produced_log.server.url, f"http://127.0.0.1:{port}"))
    assert f"127.0.0.1:{port}" in closed.read_text()
    error = one_line_error(modeladapter("verify", "--kubeconfig", str(closed), *url))
    assert error.startswith(f"modeladapter verify: cannot reach the Kubernetes API server at http://127.0.0.1:{port}")
    garbage = tmp_path / "garbage"
    garbage.write_text("this: [is not a kubeconfig")
    assert "cannot use the kubeconfig" in one_line_error(modeladapter("verify", "--kubeconfig", str(garbage), *url))
    context = one_line_error(
        modeladapter("verify", "--kubeconfig", str(produced_log.kubeconfig), "--context", "nope", *url)
    )
    assert "cannot use the kubeconfig" in context and "nope" in context


# --- the installed console script: the same one line, no traceback ---------------------------------------------


def test_the_console_script_prints_the_same_single_lines(tmp_path: Path) -> None:
    database_url = small_log(tmp_path)
    url = ("--database-url", database_url)
    newer = f"sqlite:///{tmp_path}/newer.db"
    empty = tmp_path / "empty.db"
    empty.touch()
    shutil.copyfile(tmp_path / "small-events.db", tmp_path / "newer.db")
    with sqlite3.connect(tmp_path / "newer.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    connection.close()
    cases = {
        "unknown adapter": ("history", "chaoss", *url),
        "bad time": ("replay", "chaos", "--at", "yesterday", *url),
        "bad output": ("stats", "-o", "xml", *url),
        "unreachable database": ("stats", "--database-url", f"postgresql://postgres@127.0.0.1:{_closed_port()}/test"),
        "missing file": ("history", "x", "--database-url", f"sqlite:///{tmp_path}/nowhere/events.db"),
        "newer schema": ("events", "--database-url", newer),
        "empty database": ("stuck", "--database-url", f"sqlite:///{empty}"),
    }
    running = {case: Popen([MODELADAPTER, *argv], stdout=PIPE, stderr=PIPE, text=True, env=sandbox_environment())
               for case, argv in cases.items()}  # fmt: skip
    for case, process in running.items():
        out, err = process.communicate(timeout=60)
        error = _assert_one_line(process.returncode, out, err)
        assert error.startswith(f"modeladapter {cases[case][0]}: "), case
    assert not (tmp_path / "nowhere").exists()
