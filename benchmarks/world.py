"""A cluster to measure the operator against: the API emulator and simulated vLLM pods in this process, and the
operator as its own process (`modeladapter run`), as it runs in a cluster.

The operator gets a core to itself (the machine has two): what is measured is its latency and its cost, not
the emulator's. Pods are created Ready since five minutes ago, so that the stability window does not count
unless a benchmark asks for it. Progress is read from the emulator's memory (no HTTP), every millisecond, so
that watching costs the operator nothing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from kubernetes_asyncio import client, config

from modeladapter.operator.kube.client import MODELADAPTERS, Kube
from modeladapter.operator.kube.manifests import modeladapter_crd
from modeladapter.sandbox.apiserver import ApiServer
from modeladapter.sandbox.engine.adapter_files import write_peft_adapter
from modeladapter.sandbox.engine.faults import Fault, Route
from modeladapter.sandbox.engine.fleet import EngineFleet
from modeladapter.sandbox.pods import SimulatedKubelet

BASE_MODEL = "qwen-coder-1-5b-instruct"
POD_LABELS = {"model.aibrix.ai/name": BASE_MODEL, "adapter.model.aibrix.ai/enabled": "true"}
ARTIFACT = "huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora"
NAMESPACE = "default"
MODELADAPTER = str(Path(sys.executable).parent / "modeladapter")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FIRST_POD_IP = "127.0.9.2"
"""Away from 127.0.0.2, where the sandbox and the tests put their pods, so that a benchmark can run beside them."""


def adapter_manifest(name: str, *, replicas: int | None = 1, artifact: str = ARTIFACT) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "baseModel": BASE_MODEL,
        "podSelector": {"matchLabels": dict(POD_LABELS)},
        "artifactURL": artifact,
        "schedulerName": "default",
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "apiVersion": "model.aibrix.ai/v1alpha1",
        "kind": "ModelAdapter",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"model.aibrix.ai/name": name}},
        "spec": spec,
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class OperatorProcess:
    process: subprocess.Popen[bytes]
    probe_port: int
    log: Path

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the process so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS in /proc status")

    async def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 20
            while self.process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()


@dataclass
class World:
    """`async with World(pods=10) as world:`; then `await world.start_operator()`, `world.apply(...)`."""

    pods: int
    database_url: str | None = None
    """None: a SQLite file in the world's temporary directory."""
    stability_window: float = 0.0
    load_delay: float = 0.0
    """Seconds every engine takes to answer a load (a real engine's load time, simulated)."""
    verify_interval: float = 30.0
    concurrency: int = 8
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="modeladapter-bench-")))
    server: ApiServer = field(default_factory=ApiServer)
    fleet: EngineFleet | None = None
    kube: Kube | None = None
    kubelet: SimulatedKubelet | None = None
    operator: OperatorProcess | None = None
    pod_names: list[str] = field(default_factory=list)
    _api: client.ApiClient | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def event_log_url(self) -> str:
        return self.database_url or f"sqlite:///{self.directory / 'events.db'}"

    async def __aenter__(self) -> World:
        await self.server.start()
        self.server.seed(modeladapter_crd())
        self.server.write_kubeconfig(self.kubeconfig)
        hub = {ARTIFACT.removeprefix("huggingface://"): write_peft_adapter(self.directory / "hub" / "adapter")}
        self.fleet = await EngineFleet(self.pods, first_ip=FIRST_POD_IP, hub=hub).start()
        if self.load_delay:
            for engine in self.fleet.by_ip.values():
                engine.inject(Fault(delay=self.load_delay), route=Route.LOAD, times=None)
        configuration = client.Configuration()
        await config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=configuration)
        self._api = client.ApiClient(configuration)
        self.kube = Kube(self._api)
        self.kubelet = SimulatedKubelet(self._api, first_ip=FIRST_POD_IP)
        since = datetime.now(UTC) - timedelta(minutes=5)
        for index in range(self.pods):
            name = f"{BASE_MODEL}-{index}"
            await self.kubelet.create_pod(name, NAMESPACE, labels=POD_LABELS, since=since)
            self.pod_names.append(name)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:  # fmt: skip
        if self.operator is not None:
            await self.operator.stop()
        if self._api is not None:
            await self._api.close()
        if self.fleet is not None:
            await self.fleet.stop()
        await self.server.stop()

    async def start_operator(self) -> OperatorProcess:
        """`modeladapter run` against this world; returns once it answers /readyz (its watches are up)."""
        port = free_port()
        log = self.directory / "operator.log"
        command = [
            MODELADAPTER, "run",
            "--kubeconfig", str(self.kubeconfig),
            "--database-url", self.event_log_url,
            "--stability-window", str(self.stability_window),
            "--backoff-base", "0.05",
            "--verify-interval", str(self.verify_interval),
            "--concurrency", str(self.concurrency),
            "--no-leader-election",
            "--probe-address", f"127.0.0.1:{port}",
            "--log-level", "WARNING",
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
        self.operator = OperatorProcess(process, port, log)
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as http:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the operator exited with {process.returncode}: {log.read_text()[-2000:]}")
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/readyz", timeout=1)).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the operator did not become ready within 60 s")
                await asyncio.sleep(0.05)
        return self.operator

    # --- acting and observing -------------------------------------------------------------------------

    async def apply(self, manifest: dict[str, Any]) -> None:
        assert self.kube is not None
        await self.kube.create(MODELADAPTERS, NAMESPACE, manifest)

    async def delete_adapter(self, name: str) -> None:
        assert self.kube is not None
        await self.kube.delete(MODELADAPTERS, NAMESPACE, name)

    def status(self, name: str) -> dict[str, Any]:
        found = self.server.get("model.aibrix.ai/v1alpha1", "ModelAdapter", NAMESPACE, name)
        return dict((found or {}).get("status") or {})

    def running(self, name: str, replicas: int = 1) -> bool:
        status = self.status(name)
        return status.get("phase") == "Running" and status.get("readyReplicas") == replicas

    async def until(self, check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.001) -> float:
        """Poll `check` until it holds; the monotonic time at which it was first seen to hold."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
            await asyncio.sleep(interval)
        return time.monotonic()

    async def until_all_running(self, names: Iterable[str], *, replicas: int = 1, timeout: float) -> float:
        waiting = set(names)

        def done() -> bool:
            for name in list(waiting):
                if self.running(name, replicas):
                    waiting.discard(name)
            return not waiting

        return await self.until(done, timeout=timeout, what=f"{len(waiting)} adapters to run", interval=0.01)
