"""`modeladapter sandbox` as a user runs it: the installed console script, a child process, a fresh working directory.

Every run gets its own block of loopback addresses (`--first-pod-ip`) with port 8000 free, and a free gateway
port (`--gateway`), so that these tests never meet another sandbox on this machine (a developer's, or another
test run's) on 127.0.0.2:8000 or 127.0.0.1:8888. Nothing
else differs from the README's command: the state directory is the working directory's `./.modeladapter`.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from modeladapter.fsm.events import PhaseChanged, RecordedEvent
from modeladapter.sandbox.engine.fleet import loopback_addresses
from tests.conftest import postgres_admin, postgres_database_url

MODELADAPTER = Path(sys.executable).with_name("modeladapter")
"""The console script `pip install -e .` put next to this interpreter (`.venv/bin/modeladapter`)."""
SAMPLE = "qwen-code-lora"
TIMELINE = ["Pending", "Scheduled", "Loading", "Bound", "Running"]
"""The seed documentation's phases, in the order the sample adapter passes them."""
RUN_TIMEOUT = 120.0
_PHASE_LINE = re.compile(r"^\S+  (?P<adapter>\S+)  phase (?P<source>\S+) -> (?P<target>\S+) \(")


@dataclass(frozen=True)
class Finished:
    """A sandbox run that ended."""

    code: int
    stdout: str
    stderr: str

    def explain(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def environment() -> dict[str, str]:
    """This process's environment without the event log override, so the sandbox picks its default."""
    return {key: value for key, value in os.environ.items() if key != "MODELADAPTER_DATABASE_URL"}


def free_loopback_block(count: int, port: int = 8000) -> str:
    """The first of `count` consecutive loopback addresses, away from 127.0.0.2, with `port` free on each."""
    chance = random.Random()
    for _ in range(100):
        first = f"127.{chance.randrange(100, 250)}.{chance.randrange(0, 250)}.2"
        if all(_port_free(ip, port) for ip in loopback_addresses(count, first=first)):
            return first
    raise AssertionError(f"no block of {count} loopback addresses with port {port} free")


def _port_free(ip: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((ip, port))
        except OSError:
            return False
    return True


def sandbox_argv(*args: str, pods: int = 3) -> list[str]:
    """`modeladapter sandbox ARGS`, on pod addresses and a gateway port of its own (unless ARGS chooses them)."""
    argv = [str(MODELADAPTER), "sandbox", *args]
    if "--first-pod-ip" not in args:
        argv += ["--first-pod-ip", free_loopback_block(pods)]
    if "--gateway" not in args:
        argv += ["--gateway", f"127.0.0.1:{free_port()}"]
    return argv


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_sandbox(cwd: Path, *args: str, pods: int = 3, timeout: float = RUN_TIMEOUT,
                env: Mapping[str, str] | None = None) -> Finished:  # fmt: skip
    """Run the sandbox in `cwd` to its end (with `env` added to the environment)."""
    assert MODELADAPTER.exists(), f"{MODELADAPTER} is missing: run `.venv/bin/pip install -e '.[dev]'` first"
    result = subprocess.run(
        sandbox_argv(*args, pods=pods), cwd=cwd, env={**environment(), **(env or {})}, capture_output=True,
        text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return Finished(result.returncode, result.stdout, result.stderr)


def run_modeladapter(cwd: Path, *args: str) -> Finished:
    """Any other `modeladapter` command, in `cwd`."""
    result = subprocess.run(
        [str(MODELADAPTER), *args], cwd=cwd, env=environment(), capture_output=True, text=True, timeout=60
    )
    return Finished(result.returncode, result.stdout, result.stderr)


class Background:
    """A sandbox serving in the background (no `--exit-when-running`), its output read as it comes."""

    def __init__(self, cwd: Path, *args: str, pods: int = 3) -> None:
        self.process = subprocess.Popen(
            sandbox_argv(*args, pods=pods), cwd=cwd, env=environment(), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self._lines: list[str] = []
        self._errors: list[str] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self._lines), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self._errors), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str] | None, into: list[str]) -> None:
        assert stream is not None
        for line in iter(stream.readline, ""):
            with self._changed:
                into.append(line)
                self._changed.notify_all()

    @property
    def stdout(self) -> str:
        with self._changed:
            return "".join(self._lines)

    @property
    def stderr(self) -> str:
        with self._changed:
            return "".join(self._errors)

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        """Until `text` is in the output; fails with the output so far if the sandbox ends or time runs out."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while text not in "".join(self._lines):
                ended = not any(reader.is_alive() for reader in self._readers)
                if ended or time.monotonic() > deadline:
                    raise AssertionError(
                        f"the sandbox did not print {text!r} (exit {self.process.poll()}):\n{''.join(self._lines)}"
                        f"\n--- stderr\n{''.join(self._errors)}"
                    )
                self._changed.wait(0.5)

    def interrupt(self, timeout: float = 60.0) -> Finished:
        """Ctrl-C, and the run as it ended."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(10)
        return Finished(code, self.stdout, self.stderr)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def background() -> Iterator[list[Background]]:
    """Sandboxes a test starts in the background; whatever is still running at the end is killed."""
    started: list[Background] = []
    yield started
    for sandbox in started:
        sandbox.kill()


# --- the event log ----------------------------------------------------------------------------------------------


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def streams_of(events: Sequence[RecordedEvent], name: str) -> list[list[RecordedEvent]]:
    """The streams (adapter incarnations) of `name`, oldest first, each in version order."""
    by_stream: dict[str, list[RecordedEvent]] = {}
    for event in events:
        if event.name == name:
            by_stream.setdefault(event.stream_id, []).append(event)
    return list(by_stream.values())


def phases_in_log(stream: Sequence[RecordedEvent]) -> list[str]:
    """The phases a stream entered, in order (a phase re-entered from itself is not a new one)."""
    phases: list[str] = []
    for event in stream:
        payload = event.payload
        if isinstance(payload, PhaseChanged) and payload.from_phase != payload.to_phase:
            phases.append(str(payload.to_phase))
    return phases


def types_in_log(stream: Sequence[RecordedEvent]) -> set[str]:
    return {event.payload.type for event in stream}


def phases_printed(stdout: str, adapter: str) -> list[str]:
    """The phases `adapter` (namespace/name) entered, in the order the live output printed them."""
    phases: list[str] = []
    for line in stdout.splitlines():
        match = _PHASE_LINE.match(line)
        if match and match["adapter"] == adapter and match["source"] != match["target"]:
            phases.append(match["target"])
    return phases


# --- PostgreSQL -------------------------------------------------------------------------------------------------


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    name = f"ma_sandbox_{uuid.uuid4().hex[:12]}"
    postgres_admin(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_database_url(name)
    finally:
        postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
