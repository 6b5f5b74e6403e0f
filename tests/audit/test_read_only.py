"""The audit commands only read: not a byte of a log changes, no file appears or goes, and a log nobody may write
to is read all the same.

SQLite is opened read-only without touching `-wal` and `-shm` (`modeladapter.store.readonly`): a log whose
operator is still running, or was killed before it could checkpoint, keeps its `-wal` and `-shm` exactly as
they were, and their commits are read; a log in a read-only directory (for root: files and directory with the
immutable attribute, which behaves as a read-only mount does) is read, with or without a `-wal`. PostgreSQL is
read in read-only transactions.

Findings this file pins: given a log with a live `-wal`, a command checkpointed it into the main file and
deleted `-wal` and `-shm`; on a read-only directory every command failed with "attempt to write a readonly
database"; both because the commands went through the operator's read-write engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from modeladapter.operator.audit.eventlog import open_event_log
from tests.audit.conftest import MODELADAPTER, Databases, Run, one_line_error, sandbox_environment
from tests.audit.logs import file_digests, immutable, leave_wal, write_log

COMMANDS = {
    "history": (("history", "chaos"), 0),
    "events": (("events", "-A"), 0),
    "replay": (("replay", "chaos", "--step"), 0),
    "verify": (("verify", "-A"), 1),  # the empty cluster has none of the log's adapters: drift
    "stuck": (("stuck", "--for", "0s", "-A"), 0),
    "stats": (("stats", "-A"), 0),
}
SHOW_EVERY_ADAPTER = {"events", "verify", "stuck", "stats"}
"""The commands whose answer names every live adapter of the log, so the one only in `-wal` too."""


def _log(directory: Path) -> str:
    directory.mkdir()
    return write_log(f"sqlite:///{directory}/events.db")


def _run_every_command(modeladapter: Run, url: str, kubeconfig: Path, *, wal_only: bool) -> None:
    """Each command answers on the log at `url`; with `wal_only`, the adapter only `-wal` holds is in the answer."""
    for command, (argv, code) in COMMANDS.items():
        extra = ("--kubeconfig", str(kubeconfig)) if command == "verify" else ()
        result = modeladapter(*argv, *extra, "--database-url", url)
        assert (result.code, result.err) == (code, ""), (command, result)
        assert ("default/walonly" in result.out) == (wal_only and command in SHOW_EVERY_ADAPTER), (command, result.out)


@pytest.mark.parametrize("writer", ["stays", "dies"], ids=["operator-running", "operator-killed"])
def test_no_command_changes_a_byte_of_a_log_with_a_live_wal_and_each_reads_its_commits(
    modeladapter: Run, empty_cluster: Path, tmp_path: Path, writer: str
) -> None:
    directory = tmp_path / "log"
    url = _log(directory)
    with leave_wal(url, writer=writer):
        before = file_digests(directory)
        assert set(before) == {"events.db", "events.db-wal", "events.db-shm"}
        assert (directory / "events.db-wal").stat().st_size > 0
        for command, (argv, code) in COMMANDS.items():
            extra = ("--kubeconfig", str(empty_cluster)) if command == "verify" else ()
            result = modeladapter(*argv, *extra, "--database-url", url)
            assert (result.code, result.err) == (code, ""), (command, result)
            if command in SHOW_EVERY_ADAPTER:
                assert "default/walonly" in result.out, (command, result.out)
            assert file_digests(directory) == before, f"{command} changed the log's files"


def test_events_follow_reads_a_live_wal_and_leaves_it_as_it_was(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    url = _log(directory)
    with leave_wal(url, writer="stays"):
        before = file_digests(directory)
        following = subprocess.Popen([MODELADAPTER, "events", "-f", "-A", "--database-url", url],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=sandbox_environment())  # fmt: skip
        try:
            assert following.stdout is not None
            for line in following.stdout:
                if "default/walonly" in line:  # the backlog's last event, appended to -wal only
                    break
            following.send_signal(signal.SIGINT)
            _, err = following.communicate(timeout=30)
        finally:
            if following.poll() is None:
                following.kill()
        assert (following.returncode, err) == (0, "")
        assert file_digests(directory) == before


def test_a_reader_opened_before_an_operator_starts_sees_its_commits_and_writes_nothing(tmp_path: Path) -> None:
    # As `events --follow` started while the operator is down: its pooled connection was opened immutable.
    directory = tmp_path / "log"
    url = _log(directory)

    async def follow() -> list[list[str]]:
        seen = []
        async with open_event_log(url) as store:
            seen.append([s.name for s in await store.streams()])
            with leave_wal(url, writer="stays"):
                before = file_digests(directory)
                seen.append([s.name for s in await store.streams()])
                assert file_digests(directory) == before
        return seen

    assert asyncio.run(follow()) == [["chaos", "waiting", "gone"], ["chaos", "waiting", "gone", "walonly"]]


@pytest.mark.parametrize("layout", ["checkpointed", "wal-of-a-killed-operator", "rollback-journal"])
def test_every_command_reads_a_log_in_a_directory_nobody_can_write_to(
    modeladapter: Run, empty_cluster: Path, tmp_path: Path, layout: str
) -> None:
    directory = tmp_path / "log"
    url = _log(directory)
    if layout == "rollback-journal":  # as a `sqlite3 .backup` copy may be
        with contextlib.closing(sqlite3.connect(directory / "events.db")) as connection:
            assert connection.execute("PRAGMA journal_mode=DELETE").fetchone() == ("delete",)
    with leave_wal(url, writer="dies") if layout == "wal-of-a-killed-operator" else contextlib.nullcontext():
        before = file_digests(directory)
        assert ("events.db-wal" in before) == (layout == "wal-of-a-killed-operator")
        with immutable(directory):
            _run_every_command(modeladapter, url, empty_cluster, wal_only=layout == "wal-of-a-killed-operator")
        assert file_digests(directory) == before


def test_a_wal_without_its_shm_is_refused_in_one_line_and_nothing_is_created(modeladapter: Run, tmp_path: Path) -> None:
    directory = tmp_path / "log"
    url = _log(directory)
    with leave_wal(url, writer="dies"):
        (directory / "events.db-shm").unlink()  # as a copy of the log made without it
        before = file_digests(directory)
        for command, (argv, _) in COMMANDS.items():
            extra = ("--kubeconfig", str(tmp_path / "unused")) if command == "verify" else ()
            error = one_line_error(modeladapter(*argv, *extra, "--database-url", url))
            assert error.startswith(f"modeladapter {command}: cannot read the event log {url} without writing to it:")
            assert "events.db-shm, which SQLite needs to read them without writing, is missing" in error
            assert file_digests(directory) == before


def test_the_engine_the_commands_read_through_refuses_to_write(databases: Databases) -> None:
    url = write_log(databases.new())

    async def try_writing() -> None:
        async with open_event_log(url) as store, store.engine.connect() as connection:
            if databases.backend == "postgres":
                shown = await connection.scalar(text("SHOW transaction_read_only"))
                assert shown == "on"
            with pytest.raises(DBAPIError, match="read-only transaction|readonly database"):
                await connection.execute(text("UPDATE adapter_streams SET name = 'renamed'"))

    asyncio.run(try_writing())


@pytest.mark.postgres
def test_every_command_answers_on_postgresql_in_read_only_transactions(
    modeladapter: Run, empty_cluster: Path, tmp_path: Path
) -> None:
    databases = Databases("postgres", tmp_path)
    try:
        _run_every_command(modeladapter, write_log(databases.new()), empty_cluster, wal_only=False)
    finally:
        databases.drop_all()
