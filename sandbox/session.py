"""The sandbox's world in one process, on loopback only: the API emulator, engine pods, the operator, the log.

    async with SandboxSession(SandboxOptions(pods=3), say=print) as session:
        await session.apply(sample_adapter())
        session.kubeconfig                    # for kubectl
        await session.adapter_status(ref)     # what `kubectl get` shows

Entering starts, in order, and undoes in reverse on the way out (or on any failure):

1. the state directory (`./.modeladapter`), locked for this process, so two sandboxes never share it;
2. the event log (the state directory's SQLite file, or any `--database-url`), migrated; earlier runs'
   events stay, the log is append-only;
3. the Kubernetes API emulator on 127.0.0.1 (a free port), seeded with the ModelAdapter CRD, and a
   kubeconfig for it in the state directory;
4. one engine per pod on 127.0.0.2, 127.0.0.3, ... (or from `--first-pod-ip`) port 8000: simulated vLLM engines (which know the sample
   adapter's Hugging Face repository, stored as a PEFT directory under the state directory), or real vLLM
   0.32 CPU servers from the prepared lane (tens of seconds each to start);
5. the pods, created through the API by `SimulatedKubelet` and labelled like the seed documentation's
   base model, named like a Deployment's (`qwen-coder-1-5b-instruct-<template hash>-<suffix>`, new names each
   run: the log of an earlier run names that run's pods, and the operator finalizes those streams without
   touching the new pods). Simulated pods are Ready since a minute before start, as in a cluster that was
   already up, so nobody waits out the 5 s stability window; a real vLLM pod turns Ready when its server
   answers `/health`, and then the window applies;
6. with `gateway` set, a real Envoy on that address (`modeladapter.sandbox.gateway`), which routes OpenAI requests
   by the body's `model` to the endpoints the operator publishes in each adapter's EndpointSlice, following
   them through the API as a cluster's gateway does;
7. with `runtime`, AIBrix's real runtime beside each engine and a local S3 store holding the sample
   (`modeladapter.sandbox.runtimes`), the pods given the `aibrix-runtime` container and the operator
   `--enable-runtime-sidecar`;
8. the operator (`Operator`), holding the leader-election Lease where an installed operator holds it
   (`modeladapter-operator` in `modeladapter-system`, a namespace created for it), so that the sandbox runs
   the installed operator's code path and a second operator pointed at the emulator waits as a standby;
   probes and metrics on a free loopback port, the documented 5 s stability window, and the documented
   backoff shape scaled to a 1 s base (1, 2, 4, 8, 16 s) so that retries heal in seconds.

Anything in the way (the state directory locked or not writable, port 8000 taken on a pod address, the
gateway's port taken or Envoy not installed, a database that cannot be used, the vLLM lane not prepared) is a `SandboxProblem` with a one-line message.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Literal

from sqlalchemy.exc import DBAPIError

from modeladapter import migrations
from modeladapter.operator.controller.running import Operator
from modeladapter.operator.controller.settings import DEFAULT_LEASE_NAMESPACE, OperatorSettings
from modeladapter.operator.kube.client import MODELADAPTERS, SECRETS, AlreadyExists, Kube, NotFound, Resource
from modeladapter.operator.kube.manifests import modeladapter_crd
from modeladapter.sandbox.addresses import ENGINE_PORT, FIRST_POD_IP, PortTaken, check_ports_free, free_port
from modeladapter.sandbox.apiserver import ApiServer
from modeladapter.sandbox.documents import (
    BASE_MODEL,
    POD_LABELS,
    SAMPLE_ARTIFACT,
    SAMPLE_NAME,
    AdapterRef,
    Manifest,
    ref,
)
from modeladapter.sandbox.engine.adapter_files import write_peft_adapter
from modeladapter.sandbox.engine.aibrix_lane import RuntimeLane
from modeladapter.sandbox.engine.fleet import EngineFleet, loopback_addresses
from modeladapter.sandbox.engine.server import SimulatedEngine
from modeladapter.sandbox.engine.vllm_lane import Lane, VllmServer
from modeladapter.sandbox.gateway.gateway import Gateway, GatewayProblem
from modeladapter.sandbox.pods import SimulatedKubelet, engine_container
from modeladapter.sandbox.runtimes import RUNTIME_CONTAINER, RuntimeSidecars
from modeladapter.store import SchemaTooNew, SqlEventStore, UnsupportedDatabase, create_engine
from modeladapter.store.engine import redact_url
from modeladapter.store.eventstore import select_events
from modeladapter.store.schema import events

EngineKind = Literal["sim", "vllm"]
DEFAULT_STATE_DIR: Final = Path(".modeladapter")
DEPLOYMENT: Final = "qwen-coder-1-5b-instruct"
NAMESPACE: Final = "default"
SANDBOX_BACKOFF_BASE: Final = 1.0
"""Seconds; production's is 5 s. The shape (doubling, 5 attempts per pod) is unchanged."""
SANDBOX_DRAIN: Final = 0.5
"""Seconds; production's is 2 s. The sandbox's gateway follows an EndpointSlice within about 0.2 s."""
ALREADY_UP_FOR: Final = timedelta(minutes=1)
"""How long simulated pods have been Ready when the sandbox starts (longer than the stability window)."""
VLLM_START_TIMEOUT: Final = 600.0
_NAME_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"  # what Kubernetes uses for generated name suffixes
NAMESPACES: Final = Resource("", "v1", "namespaces", "Namespace", namespaced=False)


class SandboxProblem(RuntimeError):
    """The sandbox cannot start here; the message is one line that says why and what to do."""


@dataclass(frozen=True, slots=True)
class SandboxOptions:
    pods: int = 3
    engine: EngineKind = "sim"
    state_dir: Path = DEFAULT_STATE_DIR
    database_url: str | None = None
    """None: `sqlite:///<state_dir>/events.db` (the default `./.modeladapter/events.db`)."""
    first_pod_ip: str = FIRST_POD_IP
    """The first pod's address; the others follow it (127.0.0.2, 127.0.0.3, ... by default)."""
    backoff_base: float = SANDBOX_BACKOFF_BASE
    stability_window: float = 5.0
    metrics: bool = True
    """Serve the operator's /metrics, /healthz and /readyz on a free loopback port."""
    gateway: tuple[str, int] | None = None
    """Where the Envoy gateway listens (the CLI's default is 127.0.0.1:8888); None: no gateway."""
    runtime: bool = False
    """AIBrix's real runtime beside each engine, and a local S3 store holding the sample (`RuntimeSidecars`)."""

    @property
    def event_log_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'events.db'}"

    @property
    def kubeconfig_path(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def pod_ips(self) -> list[str]:
        return loopback_addresses(self.pods, first=self.first_pod_ip)


@dataclass(slots=True)
class SandboxPod:
    name: str
    ip: str


def _suffix(length: int) -> str:
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(length))


@dataclass(slots=True)
class SandboxSession:
    """The running sandbox; enter it with `async with`. `say` gets one line per slow step (vLLM start-up)."""

    options: SandboxOptions
    say: Callable[[str], None] = lambda _line: None
    server: ApiServer | None = None
    kube: Kube | None = None
    kubelet: SimulatedKubelet | None = None
    store: SqlEventStore | None = None
    fleet: EngineFleet | None = None
    vllm: list[VllmServer] = field(default_factory=list)
    lane: Lane | None = None
    pods: list[SandboxPod] = field(default_factory=list)
    gateway: Gateway | None = None
    sidecars: RuntimeSidecars | None = None
    operator: Operator | None = None
    operator_task: asyncio.Task[int] | None = None
    metrics_url: str | None = None
    lease: str | None = None
    """`NAMESPACE/NAME` of the Lease the operator holds."""
    start_position: int = 0
    """The log's last position before this run: everything after it is this run's."""
    template_hash: str = field(default_factory=lambda: _suffix(10))
    _lock: IO[str] | None = None
    _exits: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    # --- lifecycle -----------------------------------------------------------------------------------------

    async def __aenter__(self) -> SandboxSession:
        try:
            await self._start()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop everything that was started, newest first; safe to call twice."""
        await self._exits.aclose()

    async def _start(self) -> None:
        options = self.options
        if options.engine == "vllm":
            self.lane = Lane()
            problem = self.lane.problem()
            if problem is not None:
                raise SandboxProblem(problem)
        if options.runtime and (problem := RuntimeLane().problem()) is not None:
            raise SandboxProblem(problem)
        self._lock_state_dir()
        try:
            check_ports_free(options.pod_ips)
        except PortTaken as taken:
            raise SandboxProblem(str(taken)) from None
        await self._open_event_log()
        self.server = await self._exits.enter_async_context(ApiServer(host="127.0.0.1"))
        self.server.seed(modeladapter_crd())
        self.server.write_kubeconfig(options.kubeconfig_path)
        self.kube = await Kube.connect(str(options.kubeconfig_path))
        self._exits.push_async_callback(self.kube.close)
        self.kubelet = SimulatedKubelet(self.kube.api, first_ip=options.first_pod_ip)
        if options.gateway is not None:
            await self._start_gateway(*options.gateway)
        if options.engine == "sim":
            await self._start_simulated_pods()
        else:
            await self._start_vllm_pods()
        if options.runtime:
            await self._start_runtimes()
        await self._start_operator()

    async def _start_gateway(self, host: str, port: int) -> None:
        assert self.kube is not None
        gateway = Gateway(self.kube, self.options.state_dir / "gateway", host=host, port=port)
        try:
            self.gateway = await self._exits.enter_async_context(gateway)
        except GatewayProblem as problem:
            raise SandboxProblem(str(problem)) from None

    async def _start_runtimes(self) -> None:
        assert self.kube is not None
        repository = SAMPLE_ARTIFACT.removeprefix("huggingface://")
        sample = self.lane.adapter("lora-a") if self.lane is not None else self.options.state_dir / "hub" / repository
        sidecars = RuntimeSidecars(self.options.pod_ips, sample=sample, adapters=[SAMPLE_NAME], say=self.say)
        try:
            self.sidecars = await self._exits.enter_async_context(sidecars)
        except RuntimeError as error:
            raise SandboxProblem(_one_line(str(error))[:500]) from None
        await self._ensure_namespace(NAMESPACE)
        with contextlib.suppress(AlreadyExists):
            await self.kube.create(SECRETS, NAMESPACE, sidecars.secret(NAMESPACE))

    def _lock_state_dir(self) -> None:
        state_dir = self.options.state_dir
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            lock = (state_dir / "sandbox.lock").open("a+")
        except OSError as error:
            raise SandboxProblem(f"cannot use the state directory {state_dir}: {error.strerror or error}") from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            lock.close()
            raise SandboxProblem(
                f"another modeladapter sandbox (pid {holder}) is running with the state directory {state_dir}; "
                "stop it (Ctrl-C) or pass --state-dir DIR"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        self._lock = lock
        self._exits.callback(self._unlock)

    def _unlock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    async def _open_event_log(self) -> None:
        url = self.options.event_log_url
        try:
            engine = create_engine(url)
        except UnsupportedDatabase as error:
            raise SandboxProblem(str(error)) from None
        store = SqlEventStore(engine)
        self._exits.push_async_callback(store.close)
        try:
            await migrations.upgrade(engine)
            self.start_position = await _last_position(store)
        except SchemaTooNew as error:
            raise SandboxProblem(str(error)) from None
        except (OSError, DBAPIError) as error:
            detail = error.orig if isinstance(error, DBAPIError) else error
            raise SandboxProblem(f"cannot use the event log {redact_url(url)}: {_one_line(str(detail))}") from None
        self.store = store

    async def _start_simulated_pods(self) -> None:
        assert self.kubelet is not None
        repository = SAMPLE_ARTIFACT.removeprefix("huggingface://")
        # What a Hugging Face cache holds for the sample's repository: a PEFT adapter directory.
        hub = {repository: write_peft_adapter(self.options.state_dir / "hub" / repository)}
        try:
            self.fleet = await self._exits.enter_async_context(
                EngineFleet(
                    self.options.pods,
                    port=ENGINE_PORT,
                    hub=hub,
                    first_ip=self.options.first_pod_ip,
                    served_model_name=BASE_MODEL,  # the pods' `model.aibrix.ai/name`, as in AIBrix's samples
                )
            )
        except OSError as error:
            raise SandboxProblem(
                f"cannot serve the simulated engines on port {ENGINE_PORT}: {error.strerror or error}"
            ) from None
        ready_since = datetime.now(UTC) - ALREADY_UP_FOR
        for ip in self.options.pod_ips:
            await self.create_pod(ip, ready_since=ready_since)

    async def _start_vllm_pods(self) -> None:
        assert self.kubelet is not None and self.lane is not None
        lane = self.lane
        servers = [VllmServer(ip, ENGINE_PORT, lane=lane, served_model_name=BASE_MODEL) for ip in self.options.pod_ips]
        self._exits.push_async_callback(self._stop_vllm)
        for server in servers:
            pod = await self.create_pod(server.host, ready=False)
            self.say(f"starting vLLM 0.32 (CPU) for pod {pod.name} at {server.base_url} (log: {server.log_path})")
            server.launch()
            self.vllm.append(server)
        started = asyncio.get_running_loop().time()
        waiting = dict(zip((p.name for p in self.pods), servers, strict=True))
        last_note = started
        while waiting:
            await asyncio.sleep(0.5)
            now = asyncio.get_running_loop().time()
            for name, server in list(waiting.items()):
                try:
                    up = await asyncio.to_thread(server.started)
                except RuntimeError as error:
                    raise SandboxProblem(_one_line(str(error).split("\n")[0])) from None
                if up:
                    del waiting[name]
                    await self.kubelet.mark_ready(name, NAMESPACE)
                    self.say(f"vLLM for pod {name} answers at {server.base_url} after {now - started:.0f} s; pod Ready")
            if waiting and now - started > VLLM_START_TIMEOUT:
                raise SandboxProblem(f"vLLM did not start within {VLLM_START_TIMEOUT:.0f} s; see {servers[0].log_path}")
            if waiting and now - last_note >= 15:
                last_note = now
                self.say(
                    f"still starting vLLM: {len(servers) - len(waiting)} of {len(servers)} up after {now - started:.0f} s"
                )

    async def _stop_vllm(self) -> None:
        servers, self.vllm = self.vllm, []
        await asyncio.gather(*(asyncio.to_thread(server.stop) for server in servers))

    async def _start_operator(self) -> None:
        options = self.options
        probe_port = free_port() if options.metrics else 0
        # The emulator starts with the built-in namespaces only; the Lease needs the install's.
        await self._ensure_namespace(DEFAULT_LEASE_NAMESPACE)
        settings = OperatorSettings(
            kubeconfig=options.kubeconfig_path,
            database_url=options.event_log_url,
            stability_window=options.stability_window,
            backoff_base=options.backoff_base,
            drain_seconds=SANDBOX_DRAIN,
            enable_runtime_sidecar=options.runtime,
            leader_election=True,
            lease_namespace=DEFAULT_LEASE_NAMESPACE,
            probe_address=f"127.0.0.1:{probe_port}",
            identity=f"sandbox-{socket.gethostname()}-{os.getpid()}",
            log_format="text",
        )
        self.operator = Operator(settings, probes=options.metrics)
        self.lease = f"{settings.lease_namespace}/{settings.lease_name}"
        self.operator_task = asyncio.create_task(self.operator.run(), name="sandbox-operator")
        if options.metrics:
            self.metrics_url = f"http://127.0.0.1:{probe_port}/metrics"
        self._exits.push_async_callback(self._stop_operator)

    async def _stop_operator(self) -> None:
        task, self.operator_task = self.operator_task, None
        if self.operator is None or task is None:
            return
        self.operator.stop()
        _, still_running = await asyncio.wait({task}, timeout=15)
        for stuck in still_running:
            stuck.cancel()
        await asyncio.gather(task, return_exceptions=True)

    # --- the world -----------------------------------------------------------------------------------------

    @property
    def engines(self) -> dict[str, SimulatedEngine]:
        """The simulated engines by pod IP (empty with real vLLM)."""
        return self.fleet.by_ip if self.fleet is not None else {}

    def engine_kind(self) -> str:
        return "simulated vLLM 0.32" if self.options.engine == "sim" else "real vLLM 0.32 on the CPU"

    async def create_pod(self, ip: str, *, ready: bool = True, ready_since: datetime | None = None) -> SandboxPod:
        """A new pod of the sandbox's deployment at `ip` (where an engine serves port 8000)."""
        assert self.kubelet is not None
        while True:
            name = f"{DEPLOYMENT}-{self.template_hash}-{_suffix(5)}"
            try:
                await self.kubelet.create_pod(
                    name, NAMESPACE, labels={**POD_LABELS, "pod-template-hash": self.template_hash},
                    ready=ready, since=ready_since, ip=ip, containers=self._containers(),
                )  # fmt: skip
            except Exception as error:  # a generated name that is taken: draw another, as a ReplicaSet does
                if getattr(error, "status", None) == 409:
                    continue
                raise
            pod = SandboxPod(name, ip)
            self.pods.append(pod)
            return pod

    def _containers(self) -> list[dict[str, Any]] | None:
        """The engine, and with `runtime` the AIBrix runtime sidecar the operator then loads through."""
        return [engine_container(), dict(RUNTIME_CONTAINER)] if self.options.runtime else None

    async def delete_pod(self, name: str) -> SandboxPod:
        """Delete a pod for good, through the API (grace period 0), as when its node dies."""
        assert self.kubelet is not None
        pod = next(p for p in self.pods if p.name == name)
        await self.kubelet.delete(name, NAMESPACE)
        self.pods.remove(pod)
        return pod

    async def mark_ready(self, name: str) -> None:
        assert self.kubelet is not None
        await self.kubelet.mark_ready(name, NAMESPACE)

    # --- adapters ------------------------------------------------------------------------------------------

    async def apply(self, manifest: Manifest) -> dict[str, Any]:
        """Create the adapter, or update its spec and labels if it exists (as `kubectl apply`); KubeError on 4xx."""
        assert self.kube is not None
        where = ref(manifest)
        body = {**manifest, "metadata": {**manifest["metadata"], "namespace": where.namespace}}
        await self._ensure_namespace(where.namespace)
        if self.sidecars is not None:
            self.sidecars.adapters.append(where.name)  # its shared download folder goes on the way out
        try:
            return await self.kube.create(MODELADAPTERS, where.namespace, body)
        except AlreadyExists:
            patch = {"spec": manifest.get("spec"), "metadata": {"labels": manifest["metadata"].get("labels")}}
            return await self.kube.patch(MODELADAPTERS, where.namespace, where.name, patch)

    async def _ensure_namespace(self, namespace: str) -> None:
        assert self.kube is not None
        try:
            await self.kube.get(NAMESPACES, None, namespace)
        except NotFound:
            with contextlib.suppress(AlreadyExists):
                body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
                await self.kube.create(NAMESPACES, None, body)

    async def adapter(self, where: AdapterRef) -> dict[str, Any] | None:
        assert self.kube is not None
        try:
            return await self.kube.get(MODELADAPTERS, where.namespace, where.name)
        except NotFound:
            return None


def is_running(adapter: dict[str, Any] | None) -> bool:
    """Running as the operator verified it: phase Running, every desired replica ready, the spec observed."""
    if adapter is None:
        return False
    status = adapter.get("status") or {}
    generation = adapter.get("metadata", {}).get("generation")
    return (
        status.get("phase") == "Running"
        and status.get("readyReplicas") == status.get("desiredReplicas")
        and (status.get("observedGeneration") in (None, generation))
    )


async def _last_position(store: SqlEventStore) -> int:
    """The position of the newest event in the log (0 when it is empty)."""
    newest = await store.query_events(select_events().order_by(events.c.position.desc()).limit(1))
    return newest[0].position if newest else 0


def _one_line(text: str) -> str:
    return " ".join(text.split())
