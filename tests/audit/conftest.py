"""A real event log to audit, produced once per backend (SQLite, PostgreSQL) by the real operator.

`produced_log` is the one producer: it starts the Kubernetes API emulator, seven simulated vLLM engines and the
operator (`modeladapter.operator.controller.running.Operator`, as `modeladapter run` runs it, with a 50 ms backoff base)
in a background thread, and plays a scenario with real faults through them:

* `clean` (default/clean): loads on its only pod and runs;
* `chaos` (default/chaos): one pod's engine answers 503 to every load (5 attempts with backoff, exhausted),
  the other's 401 (not retriable, exhausted at once); after a pod switch between them and Failed, a healthy
  pod appears and the adapter recovers to Running there;
* `mover` (default/mover): Running, then its pod is deleted (PodLost) and it moves to the other pod;
* `reborn` (default/reborn): Running, deleted (Terminating, finalized), re-created: two incarnations;
* `waiting` (team-b/waiting): selects no pod and stays Pending;
* `broken` (team-b/broken): its only pod's engine answers 401 to every load: Failed, and it stays there.

The engines serve on a loopback block of their own (not 127.0.0.2 upward, where `modeladapter sandbox` and
the end-to-end tests serve theirs), so that the producer can run while those run elsewhere on the machine.

When everything has settled the operator and the engines stop; the emulator keeps serving, so that `verify`
has the cluster the log describes.

`sandbox_log` is the second producer, the one a user runs: the console script
`modeladapter sandbox --exit-when-running --chaos --seed 7` as a child process, on a fresh database of each
backend. Seed 7's play: the second pod's engine answers its first 3 loads with 502 (retried with backoff until
the 4th loads), then a pod serving the sample adapter `default/qwen-code-lora` is deleted (PodLost) and a
replacement pod takes its place. The sandbox's emulator is gone when it exits; `LiveSandbox` runs one that
keeps serving, for `verify`. The sandbox's engines serve 127.0.0.2-4 port 8000, which other runs on this
machine may hold for a while: the producers wait for the ports and retry.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes_asyncio import client, config
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from modeladapter import migrations
from modeladapter.fsm.events import AdapterEvent, LoadFailed, PhaseChanged, RecordedEvent, stamp
from modeladapter.fsm.phases import Phase
from modeladapter.operator.cli.main import main
from modeladapter.operator.controller.running import Operator
from modeladapter.operator.controller.settings import OperatorSettings
from modeladapter.operator.kube.client import MODELADAPTERS, Kube, NotFound, Raw
from modeladapter.operator.kube.manifests import modeladapter_crd
from modeladapter.sandbox.apiserver import ApiServer
from modeladapter.sandbox.engine.adapter_files import write_peft_adapter
from modeladapter.sandbox.engine.faults import Fault
from modeladapter.sandbox.engine.fleet import EngineFleet, loopback_addresses
from modeladapter.sandbox.pods import SimulatedKubelet
from modeladapter.store import SqlEventStore, create_engine
from modeladapter.store.queries import last_position
from tests.conftest import postgres_admin, postgres_database_url

T = TypeVar("T")
BASE_MODEL = "qwen-coder-1-5b-instruct"
ARTIFACT = "huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora"
MODELADAPTER = str(Path(sys.executable).parent / "modeladapter")
PODS = 7
"""The scenario's pods: clean-0, chaos-0..2, lost-0..1 in default, broken-0 in team-b."""


class LoopThread:
    """An event loop in a daemon thread, so that the emulator keeps serving while tests run synchronously."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="audit-world", daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class ProducedLog:
    """What the tests know about a produced log: where it is, where its cluster is, and what happened."""

    backend: str
    database_url: str
    kubeconfig: Path
    world: LoopThread
    server: ApiServer
    chaos_pods: dict[str, str] = field(default_factory=dict)
    """`retriable` / `fatal` / `healthy`: the chaos adapter's three pods."""
    lost_pod: str = ""
    """The pod deleted under `mover`."""

    def cluster(self, work: Callable[[Kube], Awaitable[T]]) -> T:
        """Run `work` with a client of the emulator, in the emulator's loop."""

        async def call() -> T:
            configuration = client.Configuration()
            await config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=configuration)
            async with client.ApiClient(configuration) as api:
                return await work(Kube(api))

        return self.world.run(call())

    def store(self, work: Callable[[SqlEventStore], Awaitable[T]]) -> T:
        """Run `work` with a store on the log (reads only: the tests never append to a produced log)."""

        async def call() -> T:
            engine = create_engine(self.database_url)
            try:
                return await work(SqlEventStore(engine))
            finally:
                await engine.dispose()

        return asyncio.run(call())


# --- databases --------------------------------------------------------------------------------------------------


class Databases:
    """Fresh, empty databases of one backend, each with a URL that alone selects it (the CLI takes only a URL)."""

    def __init__(self, backend: str, directory: Path) -> None:
        self.backend = backend
        self.directory = directory
        self.created: list[str] = []

    def new(self) -> str:
        label = f"ma_audit_{uuid.uuid4().hex[:12]}"
        if self.backend == "sqlite":
            return f"sqlite:///{self.directory / label}.db"
        postgres_admin(f'CREATE DATABASE "{label}"')
        self.created.append(label)
        return postgres_database_url(label)

    def drop_all(self) -> None:
        for label in self.created:
            postgres_admin(f'DROP DATABASE IF EXISTS "{label}" WITH (FORCE)')
        self.created.clear()


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session", params=BACKENDS)
def databases(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    made = Databases(request.param, tmp_path_factory.mktemp(f"audit-{request.param}"))
    yield made
    made.drop_all()


# --- the producer -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def produced_log(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProducedLog]:
    """The real operator's log of the scenario in this module's docstring, and the emulator it ran against."""
    workdir = tmp_path_factory.mktemp(f"world-{databases.backend}")
    database_url = databases.new()
    world = LoopThread()
    server = ApiServer()

    async def start() -> None:
        await server.start()
        server.seed(modeladapter_crd())
        server.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-b"}})

    world.run(start())
    produced = ProducedLog(
        databases.backend, database_url, server.write_kubeconfig(workdir / "kubeconfig"), world, server
    )
    try:
        world.run(_play(produced, workdir), timeout=180)
        yield produced
    finally:
        world.run(server.stop())
        world.close()


def _manifest(name: str, group: str, *, namespace: str = "default") -> Raw:
    return {
        "apiVersion": "model.aibrix.ai/v1alpha1",
        "kind": "ModelAdapter",
        "metadata": {"name": name, "namespace": namespace, "labels": {"model.aibrix.ai/name": name}},
        "spec": {
            "baseModel": BASE_MODEL,
            "podSelector": {"matchLabels": {"model.aibrix.ai/name": BASE_MODEL, "audit-group": group}},
            "artifactURL": ARTIFACT,
            "replicas": 1,
        },
    }


def private_loopback_block(count: int, port: int = 8000) -> str:
    """The first of `count` loopback addresses, away from 127.0.0.2 upward, whose `port` is free on each.

    `modeladapter sandbox` and the end-to-end tests serve their engines on 127.0.0.2, 127.0.0.3, ... port 8000;
    other test runs on this machine may hold those, so the producer picks a block of its own.
    """
    chance = random.Random()
    for _ in range(50):
        first = f"127.{chance.randrange(100, 250)}.{chance.randrange(0, 250)}.2"
        if all(_port_free(ip, port) for ip in loopback_addresses(count, first=first)):
            return first
    raise AssertionError(f"no block of {count} loopback addresses with port {port} free")


def _port_free(ip: str, port: int) -> bool:
    """Whether a server could listen on ip:port now (as the engines do: with SO_REUSEADDR)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((ip, port))
        except OSError:
            return False
    return True


async def _play(produced: ProducedLog, workdir: Path) -> None:
    hub = {ARTIFACT.removeprefix("huggingface://"): write_peft_adapter(workdir / "hub" / "adapter")}
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(produced.kubeconfig), client_configuration=configuration)
    settings = OperatorSettings(
        kubeconfig=produced.kubeconfig,
        database_url=produced.database_url,
        stability_window=0.0,
        backoff_base=0.05,
        verify_interval=0.3,
        leader_election=False,
        identity="audit-producer",
        probe_address="127.0.0.1:0",
        log_level="WARNING",
    )
    first_ip = private_loopback_block(PODS)
    async with client.ApiClient(configuration) as api, EngineFleet(PODS, hub=hub, first_ip=first_ip) as fleet:
        kube, kubelet = Kube(api), SimulatedKubelet(api, first_ip=first_ip)
        operator = Operator(settings, probes=False)
        running = asyncio.create_task(operator.run())
        try:
            await _scenario(produced, kube, kubelet, fleet)
            await _settle(produced)
        finally:
            operator.stop()
            code = await asyncio.wait_for(running, 30)
        assert code == 0, f"the operator stopped with status {code}"


async def _scenario(produced: ProducedLog, kube: Kube, kubelet: SimulatedKubelet, fleet: EngineFleet) -> None:
    ready_since = datetime.now(UTC) - timedelta(minutes=5)

    async def pod(name: str, group: str, namespace: str = "default") -> str:
        created = await kubelet.create_pod(
            name, namespace, labels={"model.aibrix.ai/name": BASE_MODEL, "audit-group": group}, since=ready_since
        )
        return str(created["status"]["podIP"])

    async def status(name: str, namespace: str = "default") -> Raw:
        return (await kube.get(MODELADAPTERS, namespace, name)).get("status") or {}

    async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not await check():
            if time.monotonic() > deadline:
                raise AssertionError(f"the scenario timed out waiting for {what}")
            await asyncio.sleep(0.05)

    def phase(name: str, wanted: str, namespace: str = "default") -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            try:
                return (await status(name, namespace)).get("phase") == wanted
            except NotFound:
                return False

        return check

    await pod("clean-0", "clean")
    fleet.by_ip[await pod("chaos-0", "chaos")].inject(Fault(status=503), route="load", times=None)
    fleet.by_ip[await pod("chaos-1", "chaos")].inject(Fault(status=401), route="load", times=None)
    await pod("lost-0", "lost")
    await pod("lost-1", "lost")
    fleet.by_ip[await pod("broken-0", "broken", "team-b")].inject(Fault(status=401), route="load", times=None)
    produced.chaos_pods = {"retriable": "chaos-0", "fatal": "chaos-1", "healthy": "chaos-2"}
    for name, group in (("clean", "clean"), ("chaos", "chaos"), ("mover", "lost"), ("reborn", "clean")):
        await kube.create(MODELADAPTERS, "default", _manifest(name, group))
    await kube.create(MODELADAPTERS, "team-b", _manifest("waiting", "nowhere", namespace="team-b"))
    await kube.create(MODELADAPTERS, "team-b", _manifest("broken", "broken", namespace="team-b"))

    for name in ("clean", "mover", "reborn"):
        await until(phase(name, "Running"), f"{name} to run")
    await until(phase("chaos", "Failed"), "chaos to fail on both faulty pods")
    await pod("chaos-2", "chaos")
    await until(phase("chaos", "Running"), "chaos to recover on the healthy pod")
    await until(phase("waiting", "Pending", "team-b"), "waiting to wait")
    await until(phase("broken", "Failed", "team-b"), "broken to fail")

    (serving,) = (await status("mover"))["instances"]
    produced.lost_pod = serving
    await kubelet.delete(serving)

    async def moved() -> bool:
        current = await status("mover")
        return current.get("phase") == "Running" and current.get("instances") not in ([serving], None, [])

    await until(moved, "mover to move off its deleted pod")

    await kube.delete(MODELADAPTERS, "default", "reborn")

    async def gone() -> bool:
        try:
            await kube.get(MODELADAPTERS, "default", "reborn")
        except NotFound:
            return True
        return False

    await until(gone, "reborn to be finalized")
    await kube.create(MODELADAPTERS, "default", _manifest("reborn", "clean"))
    await until(phase("reborn", "Running"), "reborn to run again")


async def _settle(produced: ProducedLog, quiet: float = 1.0) -> None:
    """Wait until nothing has been appended for `quiet` seconds: every reconcile, status patch included, is over."""
    engine = create_engine(produced.database_url)
    store = SqlEventStore(engine)
    try:
        seen, since = await last_position(store), time.monotonic()
        while time.monotonic() - since < quiet:
            await asyncio.sleep(0.1)
            newest = await last_position(store)
            if newest != seen:
                seen, since = newest, time.monotonic()
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def empty_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The kubeconfig of an API emulator with the CRD and no ModelAdapter: `verify` on any log answers (drift)."""
    world, server = LoopThread(), ApiServer()

    async def start() -> None:
        await server.start()
        server.seed(modeladapter_crd())
        server.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-b"}})

    world.run(start())
    try:
        yield server.write_kubeconfig(tmp_path_factory.mktemp("empty-cluster") / "kubeconfig")
    finally:
        world.run(server.stop())
        world.close()


# --- copies of a log ------------------------------------------------------------------------------------------


def copy_log(database_url: str, databases: Databases) -> str:
    """A copy of the log at `database_url` in a new database of the same backend, for tests that append to it."""
    if databases.backend == "sqlite":
        source = Path(make_url(database_url).database or "")
        target = databases.new()
        destination = Path(make_url(target).database or "")
        for suffix in ("", "-wal"):  # nothing writes to the source any more; its WAL, if any, is consistent
            if Path(f"{source}{suffix}").exists():
                shutil.copyfile(f"{source}{suffix}", f"{destination}{suffix}")
        return target
    label = f"ma_audit_{uuid.uuid4().hex[:12]}"
    template = make_url(database_url).database
    for attempt in range(20):  # CREATE DATABASE ... TEMPLATE needs the source to have no session open
        try:
            postgres_admin(f'CREATE DATABASE "{label}" TEMPLATE "{template}"', fail=False)
            break
        except DBAPIError:
            if attempt == 19:
                raise
            time.sleep(0.25)
    databases.created.append(label)
    return postgres_database_url(label)


async def append_events(
    database_url: str, stream_id: str, payloads: list[AdapterEvent], *, namespace: str, name: str
) -> None:
    """Append `payloads` to a stream (new or not) of the log at `database_url`, stamped now."""
    store = SqlEventStore(create_engine(database_url))
    try:
        version = await store.last_version(stream_id)
        await store.append(stream_id, stamp(payloads, at=datetime.now(UTC)), expected_version=version,
                           namespace=namespace, name=name)  # fmt: skip
    finally:
        await store.close()


def small_log(directory: Path, name: str = "chaos") -> str:
    """A SQLite log written directly (no operator): default/`name` from Pending to Running with one failed load.

    For tests of the command line itself (the console script, the kubectl plugin), not of what it computes.
    """
    database_url = f"sqlite:///{directory}/small-events.db"
    retry_at = datetime.now(UTC) + timedelta(seconds=5)

    def moved(source: Phase | None, target: Phase, trigger: str) -> PhaseChanged:
        return PhaseChanged(
            from_phase=source, to_phase=target, trigger=trigger, reason=trigger, message=f"now {target.value}"
        )

    async def write() -> None:
        engine = create_engine(database_url)
        try:
            await migrations.upgrade(engine)
        finally:
            await engine.dispose()
        walk: list[list[AdapterEvent]] = [
            [moved(None, Phase.PENDING, "created"), moved(Phase.PENDING, Phase.SCHEDULED, "pods_selected"),
             moved(Phase.SCHEDULED, Phase.LOADING, "load_started")],
            [LoadFailed(pod="pod-a", attempt=1, error="EngineUnavailable: 503", retriable=True, retry_at=retry_at)],
            [moved(Phase.LOADING, Phase.BOUND, "load_verified"), moved(Phase.BOUND, Phase.RUNNING, "service_bound")],
        ]  # fmt: skip
        for batch in walk:
            await append_events(database_url, f"uid-{name}", batch, namespace="default", name=name)

    asyncio.run(write())
    return database_url


# --- the second producer: `modeladapter sandbox --chaos` --------------------------------------------------------

SANDBOX_ADAPTER = "qwen-code-lora"
SANDBOX_SEED = "7"
SANDBOX_POD_IPS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
PORTS_BUSY = "port 8000 on"
PORT_WAIT = 90.0
"""Seconds to wait for another run on this machine to free the sandbox's engine ports."""


def sandbox_environment() -> dict[str, str]:
    """This environment without what would point the sandbox or the CLI at another log or cluster."""
    return {k: v for k, v in os.environ.items() if k not in ("MODELADAPTER_DATABASE_URL", "KUBECONFIG")}


def wait_for_sandbox_ports(deadline: float) -> None:
    while not all(_port_free(ip, 8000) for ip in SANDBOX_POD_IPS):
        if time.monotonic() > deadline:
            pytest.fail(f"port 8000 on {', '.join(SANDBOX_POD_IPS)} stayed busy for {PORT_WAIT:g} s (another sandbox?)")
        time.sleep(0.5)


@dataclass(frozen=True)
class SandboxLog:
    """A log written by `modeladapter sandbox --exit-when-running --chaos --seed 7`, and what the run printed."""

    backend: str
    database_url: str
    state_dir: Path
    output: str
    seconds: float
    namespace: str = "default"
    name: str = SANDBOX_ADAPTER

    def store(self, work: Callable[[SqlEventStore], Awaitable[T]]) -> T:
        async def call() -> T:
            engine = create_engine(self.database_url)
            try:
                return await work(SqlEventStore(engine))
            finally:
                await engine.dispose()

        return asyncio.run(call())

    def stream(self) -> list[RecordedEvent]:
        async def read(store: SqlEventStore) -> list[RecordedEvent]:
            (stream,) = await store.streams(namespace=self.namespace, name=self.name)
            return await store.read(stream.stream_id)

        return self.store(read)


def sandbox_arguments(state_dir: Path, database_url: str, *extra: str) -> list[str]:
    return [MODELADAPTER, "sandbox", "--chaos", "--seed", SANDBOX_SEED, "--state-dir", str(state_dir),
            "--database-url", database_url, *extra]  # fmt: skip


@pytest.fixture(scope="session")
def sandbox_log(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> SandboxLog:
    """The log of a real `modeladapter sandbox --exit-when-running --chaos --seed 7` run, on this backend."""
    state_dir = tmp_path_factory.mktemp(f"sandbox-{databases.backend}")
    database_url = databases.new()
    argv = sandbox_arguments(state_dir, database_url, "--exit-when-running", "--timeout", "90s")
    deadline = time.monotonic() + PORT_WAIT
    while True:
        wait_for_sandbox_ports(deadline)
        started = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, env=sandbox_environment(), timeout=150)
        if done.returncode == 2 and PORTS_BUSY in done.stderr and time.monotonic() < deadline:
            continue  # another run took the ports between our check and the sandbox's
        break
    assert done.returncode == 0, f"the sandbox exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert "all 1 adapter(s) Running" in done.stdout, done.stdout
    return SandboxLog(databases.backend, database_url, state_dir, done.stdout, time.monotonic() - started)


class LiveSandbox:
    """`modeladapter sandbox --chaos --seed 7` in the background, serving until `interrupt`."""

    SETTLED = "Meanwhile, in another terminal:"

    def __init__(self, state_dir: Path, database_url: str) -> None:
        self.state_dir = state_dir
        self.database_url = database_url
        self.lines: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._changed = threading.Condition()

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def stderr_path(self) -> Path:
        return self.state_dir.with_name(self.state_dir.name + ".stderr")

    def start(self, timeout: float = 90.0) -> None:
        """Start it and wait until every adapter is Running and the chaos play is over."""
        deadline = time.monotonic() + PORT_WAIT
        while True:
            wait_for_sandbox_ports(deadline)
            self.lines.clear()
            with self.stderr_path.open("w") as stderr_file:  # a file, not a pipe nobody reads while it runs
                self.process = subprocess.Popen(
                    sandbox_arguments(self.state_dir, self.database_url), stdout=subprocess.PIPE,
                    stderr=stderr_file, text=True, env=sandbox_environment(),
                )  # fmt: skip
            self._reader = threading.Thread(target=self._read, args=(self.process,), daemon=True)
            self._reader.start()
            if self._wait(timeout):
                return
            stderr = self.stderr_path.read_text()
            if self.process.poll() == 2 and PORTS_BUSY in stderr and time.monotonic() < deadline:
                continue
            self.interrupt()
            pytest.fail(f"the sandbox did not settle in {timeout:g} s:\n" + "\n".join(self.lines) + "\n" + stderr)

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _wait(self, timeout: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(self.SETTLED in line for line in self.lines):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    return False
                self._changed.wait(0.2)
        return True

    def interrupt(self) -> int:
        """Ctrl-C, as a user would; its exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        if self._reader is not None:
            self._reader.join(10)  # every line it printed, up to its last
        return code


# --- running the CLI --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Result]


@pytest.fixture
def modeladapter(capsys: pytest.CaptureFixture[str]) -> Run:
    """The CLI in this process (`main(argv)`), its exit status and output; stdin is never read."""

    def run(*argv: str) -> Result:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def run_process(
    *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The installed `modeladapter` console script as a child process."""
    return subprocess.run([MODELADAPTER, *argv], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def stable(document: Any) -> Any:
    """`document` without what depends on the moment the command ran (`now`, ongoing durations, stuck time)."""
    if isinstance(document, list):
        return [stable(item) for item in document]
    if not isinstance(document, dict):
        return document
    volatile = {"now", "stuck_seconds"} | ({"duration_seconds"} if document.get("ongoing") else set())
    return {key: stable(value) for key, value in document.items() if key not in volatile}


def timestamped_lines(table: str) -> list[str]:
    """The rows of a table that start with an instant (history's and events' rows)."""
    return [line for line in table.splitlines() if line[:4].isdigit() and line[4:5] == "-"]


def document(modeladapter: Run, *argv: str) -> Any:
    """The JSON document a command prints with `-o json`; the command must succeed and print nothing on stderr."""
    result = modeladapter(*argv, "-o", "json")
    assert result.code == 0 and result.err == "", result.err
    return json.loads(result.out)


def at(text: str) -> datetime:
    """An instant of a JSON document (`2026-11-26T21:04:05.123456Z`)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def one_line_error(result: Result) -> str:
    """The error of a command that must have failed as bad input: exit 2, nothing on stdout, one line on stderr."""
    assert result.code == 2, (result.code, result.out, result.err)
    assert result.out == ""
    assert result.err.endswith("\n") and result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err
    return result.err.rstrip("\n")


@pytest.fixture(autouse=True)
def no_kubeconfig_of_this_machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without `-n`, the commands take the kubeconfig context's namespace: hide a developer's own kubeconfig
    (and a sandbox's in the working directory), so that `default` is the default, as on CI."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
