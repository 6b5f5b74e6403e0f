"""The operator's HTTP endpoints for the kubelet and Prometheus: `/metrics`, `/healthz` and `/readyz`.

`ProbeServer` is a small aiohttp server started inside the operator's event loop. It knows nothing about
reconciling: the core hands it two callables that answer from state it keeps anyway.

* `/healthz` (liveness) — `is_healthy()`: are the process's loops (watches, workers, leader election) alive?
  A failing answer makes the kubelet restart the container, so it must fail only when a restart helps.
* `/readyz` (readiness) — `is_ready()`: is this replica useful, e.g. the leader, or a standby whose caches
  have synced?
* `/metrics` — the `OperatorMetrics` registry, in Prometheus' text format or OpenMetrics when asked for
  (prometheus-client's own aiohttp handler; compressed when the scraper accepts it).

A check returns a bool, or a `CheckResult` to say why it fails. 200 answers `ok`; 503 answers the reason in
one line. A check that raises is a 503 naming the exception type (the details go to the log only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from modeladapter.operator.controller.metrics import OperatorMetrics
from modeladapter.operator.controller.settings import parse_host_port

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A probe's verdict; `reason` is one short line, shown in the 503 body and `kubectl describe pod`."""

    ok: bool
    reason: str = ""

    @classmethod
    def passing(cls) -> CheckResult:
        return cls(True)

    @classmethod
    def failing(cls, reason: str) -> CheckResult:
        return cls(False, reason)


Check = Callable[[], bool | CheckResult]
"""What the core passes for `is_healthy` and `is_ready`: called on every probe, so it must be quick."""


class ProbeServer:
    """Serves `/metrics`, `/healthz` and `/readyz` on `address` (`HOST:PORT`) while started.

    `await start()` inside a running loop, `await stop()` on shutdown (or `async with`). Port 0 binds a free
    port; `port` and `url` tell which.
    """

    def __init__(self, address: str, *, metrics: OperatorMetrics, is_healthy: Check, is_ready: Check) -> None:
        self.address = address
        self._host, self._requested_port = parse_host_port(address)
        self._is_healthy = is_healthy
        self._is_ready = is_ready
        self._app = web.Application()
        self._app.router.add_get("/metrics", make_aiohttp_handler(metrics.registry))
        self._app.router.add_get("/healthz", self._healthz)
        self._app.router.add_get("/readyz", self._readyz)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The port being served (the bound one when the address asked for port 0)."""
        if self._port is None:
            raise RuntimeError("the probe server is not started")
        return self._port

    @property
    def url(self) -> str:
        """Where a client on this host reaches the server (loopback when it listens on every interface)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self._host, self._host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the probe server is already started")
        # No access log: the kubelet and Prometheus call every few seconds, forever.
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._requested_port).start()
        except OSError as error:
            await runner.cleanup()
            raise OSError(
                error.errno, f"cannot serve /metrics, /healthz and /readyz on {self.address}: {error.strerror}"
            ) from None
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        log.info("serving /metrics, /healthz and /readyz on %s", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner, self._port = self._runner, None, None
            await runner.cleanup()

    async def __aenter__(self) -> ProbeServer:
        await self.start()
        return self

    async def __aexit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _traceback: TracebackType | None
    ) -> None:
        await self.stop()

    async def _healthz(self, _request: web.Request) -> web.Response:
        return _answer(self._is_healthy, probe="health")

    async def _readyz(self, _request: web.Request) -> web.Response:
        return _answer(self._is_ready, probe="readiness")


def _answer(check: Check, *, probe: str) -> web.Response:
    try:
        verdict = check()
    except Exception as error:  # a broken check must answer 503, not take the server down
        log.exception("the %s check raised", probe)
        return web.Response(status=503, text=f"{probe} check failed: {type(error).__name__}\n")
    if isinstance(verdict, bool):
        verdict = CheckResult(verdict, "" if verdict else f"{probe} check failed")
    if verdict.ok:
        return web.Response(text="ok\n")
    reason = " ".join(verdict.reason.split()) or f"{probe} check failed"
    return web.Response(status=503, text=f"{reason}\n")
