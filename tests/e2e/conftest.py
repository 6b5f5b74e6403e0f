"""An in-process cluster for end-to-end tests: the API emulator, pods with simulated vLLM engines, the operator.

`sandbox` gives each test a fresh emulator with the ModelAdapter CRD, room for pods labelled like the seed
documentation's base model (`qwen-coder-1-5b-instruct`; they get IPs from 127.0.0.2 up, where six simulated
vLLM engines listen on port 8000), a SQLite event log, and the operator running in the background with a 50 ms backoff base (the
documented shape, scaled down) and no stability wait unless a test asks for one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes_asyncio import client, config

from modeladapter import migrations
from modeladapter.adapters.connections import EngineConnections
from modeladapter.fsm.backoff import BackoffPolicy
from modeladapter.fsm.state import AdapterState, fold
from modeladapter.operator.controller.controller import Controller
from modeladapter.operator.kube.client import ENDPOINTSLICES, MODELADAPTERS, SERVICES, Kube, NotFound, Raw
from modeladapter.operator.kube.events import EventRecorder
from modeladapter.operator.kube.manifests import modeladapter_crd
from modeladapter.operator.reconcile.reconciler import Reconciler
from modeladapter.operator.reconcile.settings import ReconcileSettings
from modeladapter.sandbox.apiserver import ApiServer
from modeladapter.sandbox.engine.adapter_files import write_peft_adapter
from modeladapter.sandbox.engine.fleet import EngineFleet
from modeladapter.sandbox.engine.server import SimulatedEngine
from modeladapter.sandbox.pods import SimulatedKubelet
from modeladapter.store import SqlEventStore, create_engine

T = TypeVar("T")
BASE_MODEL = "qwen-coder-1-5b-instruct"
POD_LABELS = {"model.aibrix.ai/name": BASE_MODEL, "adapter.model.aibrix.ai/enabled": "true"}
ARTIFACT = "huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora"
FAST = ReconcileSettings(
    stability_window=timedelta(0),
    backoff=BackoffPolicy.scaled(0.05),
    verify_interval=timedelta(seconds=0.3),
    unload_timeout=timedelta(seconds=3),
    secret_retry=timedelta(seconds=0.2),
)


def adapter_manifest(name: str = "qwen-code-lora", **spec: Any) -> Raw:
    body: Raw = {
        "baseModel": BASE_MODEL,
        "podSelector": {"matchLabels": dict(POD_LABELS)},
        "artifactURL": ARTIFACT,
        "schedulerName": "default",
    }
    body.update(spec)
    return {
        "apiVersion": "model.aibrix.ai/v1alpha1",
        "kind": "ModelAdapter",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"model.aibrix.ai/name": name, "model.aibrix.ai/port": "8000"},
        },
        "spec": {k: v for k, v in body.items() if v is not None},
    }


@dataclass
class RunningOperator:
    controller: Controller
    task: asyncio.Task[None]
    kube: Kube
    store: SqlEventStore
    engines: EngineConnections

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.engines.aclose()
        await self.store.close()
        await self.kube.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class OperatorProcess:
    process: subprocess.Popen[bytes]
    probe_port: int
    log_file: Path

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as when a node dies or the OOM killer strikes."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    async def terminate(self, *, timeout: float = 20.0) -> int:
        """SIGTERM, then wait without blocking the loop (the emulator it talks to runs in this loop)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while (code := self.process.poll()) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"the operator did not stop within {timeout}s of SIGTERM")
            await asyncio.sleep(0.05)
        return code

    async def metric(self, name: str) -> float:
        """The sum of a Prometheus metric's samples (0 if absent) from the process's /metrics."""
        import httpx

        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{self.probe_port}/metrics", timeout=5)).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name + " ") or line.startswith(name + "{")
        )

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")


@dataclass
class Sandbox:
    server: ApiServer
    api: client.ApiClient
    kube: Kube
    kubelet: SimulatedKubelet
    fleet: EngineFleet
    database_url: str
    kubeconfig: Path
    store: SqlEventStore
    operators: list[RunningOperator] = field(default_factory=list)
    processes: list[OperatorProcess] = field(default_factory=list)
    namespace: str = "default"

    # --- the world -------------------------------------------------------------------------------------

    async def add_pods(
        self,
        count: int,
        *,
        labels: dict[str, str] | None = None,
        ready_since: datetime | None = None,
        prefix: str = "qwen-coder-1-5b-instruct",
    ) -> list[str]:
        names = []
        existing = {p["metadata"]["name"] for p in self.server.objects("v1", "Pod", self.namespace)}
        index = 0
        while len(names) < count:
            name = f"{prefix}-{index}"
            index += 1
            if name in existing:
                continue
            await self.kubelet.create_pod(
                name,
                self.namespace,
                labels=labels or POD_LABELS,
                since=ready_since or datetime.now(UTC) - timedelta(minutes=5),
            )
            names.append(name)
        return names

    def pod_ip(self, pod: str) -> str:
        found = self.server.get("v1", "Pod", self.namespace, pod)
        assert found is not None, pod
        return str(found["status"]["podIP"])

    def engine(self, pod: str) -> SimulatedEngine:
        return self.fleet.by_ip[self.pod_ip(pod)]

    async def apply(self, manifest: Raw) -> Raw:
        name = manifest["metadata"]["name"]
        try:
            await self.kube.get(MODELADAPTERS, self.namespace, name)
        except NotFound:
            return await self.kube.create(MODELADAPTERS, self.namespace, manifest)
        return await self.kube.patch(
            MODELADAPTERS,
            self.namespace,
            name,
            {"spec": manifest["spec"], "metadata": {"labels": manifest["metadata"].get("labels")}},
        )

    async def adapter(self, name: str = "qwen-code-lora") -> Raw:
        return await self.kube.get(MODELADAPTERS, self.namespace, name)

    async def status(self, name: str = "qwen-code-lora") -> Raw:
        return (await self.adapter(name)).get("status") or {}

    async def status_where(self, check: Callable[[Raw], bool], name: str = "qwen-code-lora") -> Raw | None:
        """The status, once `check` holds for it (None before): for `eventually`."""
        status = await self.status(name)
        return status if check(status) else None

    async def serves(self, pod: str, name: str = "qwen-code-lora", *, path: str | None = None) -> bool:
        """The pod's engine holds the adapter (loaded from `path`, if given)."""
        loaded = self.engine(pod).adapters.get(name)
        return loaded is not None and (path is None or loaded.path == path)

    async def lacks(self, pod: str, name: str = "qwen-code-lora") -> bool:
        """The pod's engine does not hold the adapter."""
        return not await self.serves(pod, name)

    async def delete(self, name: str = "qwen-code-lora") -> None:
        await self.kube.delete(MODELADAPTERS, self.namespace, name)

    async def service_and_slice(self, name: str = "qwen-code-lora") -> tuple[Raw, Raw]:
        return await self.kube.get(SERVICES, self.namespace, name), await self.kube.get(
            ENDPOINTSLICES, self.namespace, name
        )

    async def events(self, name: str = "qwen-code-lora") -> list[Raw]:
        return [
            e
            for e in self.server.objects("v1", "Event", self.namespace)
            if (e.get("involvedObject") or {}).get("name") == name
        ]

    async def ready(self, replicas: int, name: str = "qwen-code-lora") -> bool:
        """Running with exactly `replicas` verified instances."""
        status = await self.status(name)
        return status.get("readyReplicas") == replicas and status.get("phase") == "Running"

    async def instances_ready(self, count: int, name: str = "qwen-code-lora") -> Raw:
        """The status, once exactly `count` instances are verified (`readyReplicas`); waits up to 10 s."""
        return await self.eventually(
            lambda: self.status_where(lambda s: s.get("readyReplicas") == count, name=name),
            what=f"{count} instance(s) of {name}",
        )

    async def gone(self, name: str = "qwen-code-lora") -> bool:
        try:
            await self.adapter(name)
        except NotFound:
            return True
        return False

    async def state(self, name: str = "qwen-code-lora") -> AdapterState:
        uid = (await self.adapter(name))["metadata"]["uid"]
        return fold(await self.store.read(uid))

    # --- waiting ---------------------------------------------------------------------------------------

    async def eventually(self, check: Callable[[], Awaitable[T | None]], *, timeout: float = 10.0, what: str = "") -> T:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = await check()
            except NotFound as missing:
                last = missing
            else:
                if last:
                    return last
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what or check}; last seen: {last!r}")

    async def phase(self, phase: str, name: str = "qwen-code-lora", *, timeout: float = 10.0) -> Raw:
        async def reached() -> Raw | None:
            status = await self.status(name)
            return status if status.get("phase") == phase else None

        return await self.eventually(reached, timeout=timeout, what=f"{name} to be {phase}")

    # --- the operator ----------------------------------------------------------------------------------

    def spawn_operator(
        self,
        *arguments: str,
        identity: str = "operator-a",
        probe_port: int | None = None,
        lease_namespace: str | None = "default",
        pod_namespace: str | None = None,
    ) -> OperatorProcess:
        """`modeladapter run` as a real process (so that it can be SIGKILLed), with fast test timings.

        `lease_namespace=None` leaves `--lease-namespace` out (the default applies); `pod_namespace` is the
        `POD_NAMESPACE` the Deployment would give it (none, as on a laptop, unless given)."""
        port = probe_port or free_port()
        environment = {key: value for key, value in os.environ.items() if key != "POD_NAMESPACE"}
        if pod_namespace is not None:
            environment["POD_NAMESPACE"] = pod_namespace
        command = [
            str(Path(sys.executable).parent / "modeladapter"),
            "run",
            "--kubeconfig",
            str(self.kubeconfig),
            "--database-url",
            self.database_url,
            "--stability-window",
            "0",
            "--drain-seconds",
            "0",
            "--backoff-base",
            "0.05",
            "--verify-interval",
            "0.3",
            "--probe-address",
            f"127.0.0.1:{port}",
            "--identity",
            identity,
            *(["--lease-namespace", lease_namespace] if lease_namespace is not None else []),
            "--lease-duration",
            "3",
            "--renew-deadline",
            "2",
            "--retry-period",
            "0.5",
            "--log-format",
            "json",
            *arguments,
        ]
        log_file = self.kubeconfig.parent / f"{identity}.log"
        handle = log_file.open("ab")
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True, env=environment
        )
        running = OperatorProcess(process, port, log_file)
        self.processes.append(running)
        return running

    async def start_operator(self, settings: ReconcileSettings = FAST) -> RunningOperator:
        cfg = client.Configuration()
        await config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=cfg)
        kube = Kube(client.ApiClient(cfg))
        engine = create_engine(self.database_url)
        await migrations.upgrade(engine)
        store = SqlEventStore(engine)
        engines = EngineConnections(connect_timeout=2.0, total_timeout=5.0)

        def reconciler(cluster: Any) -> Reconciler:
            return Reconciler(
                kube=kube,
                store=store,
                engines=engines,
                cluster=cluster,
                recorder=EventRecorder(kube),
                settings=settings,
            )

        controller = Controller(
            kube=kube,
            store=store,
            make_reconciler=reconciler,
            concurrency=4,
            http_routes=settings.http_route_parent is not None,
        )
        controller.may_act.set()
        running = RunningOperator(controller, asyncio.create_task(controller.run()), kube, store, engines)
        self.operators.append(running)
        return running


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with ApiServer() as server:
        server.seed(modeladapter_crd())
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        cfg = client.Configuration()
        await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        hub = {ARTIFACT.removeprefix("huggingface://"): write_peft_adapter(tmp_path / "hub" / "qwen-code-lora")}
        async with client.ApiClient(cfg) as api, EngineFleet(6, hub=hub, served_model_name=BASE_MODEL) as fleet:
            database_url = f"sqlite:///{tmp_path}/events.db"
            engine = create_engine(database_url)
            await migrations.upgrade(engine)
            store = SqlEventStore(engine)
            box = Sandbox(
                server=server,
                api=api,
                kube=Kube(api),
                kubelet=SimulatedKubelet(api),
                fleet=fleet,
                database_url=database_url,
                kubeconfig=kubeconfig,
                store=store,
            )
            try:
                yield box
            finally:
                for running in box.operators:
                    await running.stop()
                for process in box.processes:
                    process.kill()
                await store.close()
