"""Bad input to `modeladapter sandbox`: one line on stderr that names the flag, exit status 2, no traceback, and
nothing written (no state directory appears; an existing log or a running sandbox is left alone)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from modeladapter.operator.cli.main import main
from tests.conftest import read_log
from tests.sandbox_command.conftest import (
    SAMPLE,
    Background,
    Finished,
    run_sandbox,
    sqlite_url,
    streams_of,
)

PROG = "modeladapter sandbox: "


def refused(finished: Finished, *, naming: str) -> None:
    """Exit 2 and one line on stderr that starts with the program's name and says `naming`."""
    assert finished.code == 2, finished.explain()
    assert finished.stderr.count("\n") == 1 and finished.stderr.endswith("\n"), finished.stderr
    assert finished.stderr.startswith(PROG) and naming in finished.stderr, finished.stderr
    assert "Traceback" not in finished.stderr + finished.stdout


BAD_FLAGS = [
    (["--pods", "0"], "--pods: must be at least 1, got 0"),
    (["--pods", "x"], "--pods: expected a whole number, got 'x'"),
    (["--pods", "-3"], "--pods: must be at least 1, got -3"),
    (["--engine", "foo"], "--engine: must be sim or vllm, got 'foo'"),
    (["--exit-when-running", "--timeout", "abc"], "--timeout: expected seconds such as 30"),
    (["--exit-when-running", "--timeout", "0s"], "--timeout: must be longer than 0 seconds"),
    (["--timeout", "30s"], "--timeout: only applies with --exit-when-running"),
    (["--seed", "1"], "--seed: only applies with --chaos"),
    (["--chaos", "--seed", "one"], "--seed: expected a whole number, got 'one'"),
    (["--chaos", "--engine", "vllm"], "--chaos: needs --engine sim"),
    (["--database-url", "nonsense://x"], "--database-url: unsupported database 'nonsense'"),
    (["--first-pod-ip", "10.0.0.2"], "--first-pod-ip: must be a loopback address"),
    (["--first-pod-ip", "localhost"], "--first-pod-ip: expected an IPv4 address"),
    (["--first-pod-ip", "127.255.255.254", "--pods", "2"], "--pods: at most 1 pods fit on loopback"),
    (["--runtime", "triton"], "--runtime: must be aibrix or none, got 'triton'"),
    (["--gateway", "localhost:8888"], "--gateway: expected HOST:PORT"),
    (["--gateway", "8888"], "--gateway: expected HOST:PORT"),
    (["--gateway", "127.0.0.1:70000"], "--gateway: the port must be from 1 to 65535, got '70000'"),
]


def flags_id(value: object) -> str | None:
    return " ".join(value) if isinstance(value, list) else None


class TestFlagValues:
    """Checked in this process through the CLI's `main` (the console script's entry point), which is quick;
    `TestTheConsoleScript` shows that the installed script answers the same."""

    @pytest.mark.parametrize(("args", "naming"), BAD_FLAGS, ids=flags_id)
    def test_a_bad_value_is_refused_before_anything_starts(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        args: list[str], naming: str,
    ) -> None:  # fmt: skip
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("MODELADAPTER_DATABASE_URL", raising=False)

        code = main(["sandbox", *args])

        out, err = capsys.readouterr()
        refused(Finished(code, out, err), naming=naming)
        assert out == ""
        assert not (tmp_path / ".modeladapter").exists()


class TestTheConsoleScript:
    @pytest.mark.parametrize(("args", "naming"), [BAD_FLAGS[0], BAD_FLAGS[10]], ids=flags_id)
    def test_it_refuses_bad_values_in_one_line_with_status_2(
        self, tmp_path: Path, args: list[str], naming: str
    ) -> None:
        finished = run_sandbox(tmp_path, *args)

        refused(finished, naming=naming)
        assert finished.stdout == "" and not (tmp_path / ".modeladapter").exists()


class TestTheStateDirectory:
    def test_a_second_sandbox_on_a_locked_state_directory_is_refused_and_the_first_keeps_serving(
        self, tmp_path: Path, background: list[Background]
    ) -> None:
        first = Background(tmp_path)
        background.append(first)
        first.wait_for("all 1 adapter(s) Running")
        kubeconfig = (tmp_path / ".modeladapter" / "kubeconfig").read_text()

        second = run_sandbox(tmp_path, "--exit-when-running")

        refused(second, naming=f"another modeladapter sandbox (pid {first.process.pid}) is running with the state "
                               "directory .modeladapter; stop it (Ctrl-C) or pass --state-dir DIR")  # fmt: skip
        assert first.process.poll() is None, "the first sandbox stopped"
        assert (tmp_path / ".modeladapter" / "kubeconfig").read_text() == kubeconfig
        stopped = first.interrupt()
        assert stopped.code == 0, stopped.explain()
        assert len(streams_of(read_log(sqlite_url(tmp_path / ".modeladapter" / "events.db")), SAMPLE)) == 1

    @pytest.mark.parametrize(
        ("state_dir", "reason"),
        [("a-file", "a file of that name is in the way"), ("a-file/state", "Not a directory")],
        ids=["is-a-file", "under-a-file"],
    )
    def test_a_state_directory_that_cannot_be_made_is_refused(
        self, tmp_path: Path, state_dir: str, reason: str
    ) -> None:
        (tmp_path / "a-file").write_text("not a directory\n")

        finished = run_sandbox(tmp_path, "--state-dir", state_dir)

        refused(finished, naming=f"cannot use the state directory {state_dir}: {reason}")
        assert (tmp_path / "a-file").read_text() == "not a directory\n"

    def test_a_log_file_that_is_not_a_database_is_refused_and_left_as_it_was(self, tmp_path: Path) -> None:
        not_a_log = tmp_path / "notes.db"
        not_a_log.write_text("these are someone's notes, not an event log\n" * 20)

        finished = run_sandbox(tmp_path, "--database-url", sqlite_url(not_a_log))

        refused(finished, naming=f"cannot use the event log sqlite:///{not_a_log}: file is not a database")
        assert not_a_log.read_text() == "these are someone's notes, not an event log\n" * 20


class TestThePodAddresses:
    def test_pod_addresses_another_sandbox_serves_are_refused_with_a_way_out(
        self, tmp_path: Path, background: list[Background]
    ) -> None:
        (tmp_path / "first").mkdir()
        first = Background(tmp_path / "first", "--pods", "1", pods=1)
        background.append(first)
        first.wait_for("all 1 adapter(s) Running")
        address = first.stdout.split("  pods        ")[1].split()[1].removesuffix(":8000")

        second = run_sandbox(tmp_path, "--exit-when-running", "--pods", "1", "--first-pod-ip", address)

        refused(second, naming=f"port 8000 on {address} is in use")
        assert "--first-pod-ip" in second.stderr
        assert first.interrupt().code == 0

    def test_a_gateway_port_in_use_is_refused_with_a_way_out(self, tmp_path: Path) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]

            finished = run_sandbox(tmp_path, "--exit-when-running", "--pods", "1", "--gateway", f"127.0.0.1:{port}")

        refused(finished, naming=f"the gateway's port 127.0.0.1:{port} is in use")
        assert "--gateway HOST:PORT" in finished.stderr
