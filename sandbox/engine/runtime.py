"""A simulated AIBrix runtime sidecar (`aibrix_runtime`, port 8080) in front of a simulated engine.

It answers as the sidecar does (`aibrix-modeladapter.md` §5): a load with `artifact_url` is "downloaded" from
`artifacts` (URL -> a local adapter directory, standing in for S3, GCS, TOS and the Hugging Face hub), with the
credentials `required_credentials` asks for, then loaded into the engine from that directory. Failures are 500
`{"error": "..."}`: "Artifact not found: <url>", "Permission denied: <url>", "Unsupported URL scheme: <scheme>",
"Engine error: <the engine's message>". Unload always answers 200 (the sidecar ignores the engine's answer).
`GET /v1/models` is the engine's own. The sidecar calls its engine in process, so faults injected into the
engine's HTTP server do not affect it; inject into the sidecar's own `faults` instead.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from typing import Final

from aiohttp import web

from modeladapter.sandbox.engine import vllm_texts as texts
from modeladapter.sandbox.engine.faults import Fault, FaultPlan, Route
from modeladapter.sandbox.engine.server import Reply, SimulatedEngine, to_response

RUNTIME_PORT: Final = 8080
DOWNLOADABLE_SCHEMES: Final = frozenset({"huggingface", "s3", "gcs", "tos"})


class SimulatedRuntimeSidecar:
    def __init__(
        self,
        engine: SimulatedEngine,
        *,
        host: str | None = None,
        port: int = RUNTIME_PORT,
        artifacts: Mapping[str, str | os.PathLike[str]] | None = None,
        required_credentials: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.engine = engine
        self.host = host or engine.host
        self.port = port
        self.artifacts = {url: str(path) for url, path in (artifacts or {}).items()}
        self.required_credentials = {url: dict(creds) for url, creds in (required_credentials or {}).items()}
        self.faults = FaultPlan()
        self.received: list[dict[str, object]] = []
        """Every load and unload body received, for tests (credentials included: a test fixture, not a log)."""
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def inject(self, fault: Fault, *, route: Route | str = Route.ANY, times: int | None = 1) -> None:
        self.faults.add(fault, route=route, times=times)

    async def start(self) -> SimulatedRuntimeSidecar:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/v1/lora_adapter/load", self._load)
        app.router.add_post("/v1/lora_adapter/unload", self._unload)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/healthz", self._healthz)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.25)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await self.stop()
            raise
        if self.port == 0:
            self.port = int(runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def load(self, body: Mapping[str, object]) -> Reply:
        name = body.get("lora_name")
        url = body.get("artifact_url")
        if not isinstance(name, str) or not name or not isinstance(url, str) or not url:
            return _error(422, "lora_name and artifact_url are required")
        scheme = url.partition("://")[0] if "://" in url else ""
        if scheme not in DOWNLOADABLE_SCHEMES:
            return _error(500, f"Unsupported URL scheme: {scheme}")
        local_path = self.artifacts.get(url)
        if local_path is None:
            return _error(500, f"Artifact not found: {url}")
        given = {**_strings(body.get("credentials")), **_strings(body.get("additional_config"))}
        required = self.required_credentials.get(url, {})
        if any(given.get(key) != value for key, value in required.items()):
            return _error(500, f"Permission denied: {url}")
        reply = self.engine.load(name, local_path)
        if reply.status != 200:
            return _error(500, f"Engine error: {_engine_message(reply.body)}")
        return Reply(200, texts.dumps({
            "status": "success",
            "message": f"Successfully loaded adapter {name} from {url}",
            "local_path": local_path,
            "engine_response": {"message": reply.body},
        }), texts.JSON)  # fmt: skip

    def unload(self, body: Mapping[str, object]) -> Reply:
        name = body.get("lora_name")
        if not isinstance(name, str) or not name:
            return _error(422, "lora_name is required")
        self.engine.unload(name)  # the sidecar ignores the engine's answer
        return Reply(200, texts.dumps({"status": "success", "message": f"Successfully unloaded adapter {name}"}),
                     texts.JSON)  # fmt: skip

    @web.middleware
    async def _middleware(self, request: web.Request, handler: object) -> web.StreamResponse:
        route = Route.LOAD if request.path.endswith("/load") else Route.UNLOAD if request.path.endswith(
            "/unload") else Route.MODELS if request.path.endswith("/models") else Route.HEALTH  # fmt: skip
        fault = self.faults.take(route)
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.drop:
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)
        if fault is not None and fault.status is not None:
            body, content_type = fault.answer()
            return to_response(Reply(fault.status, body, content_type))
        assert callable(handler)
        response: web.StreamResponse = await handler(request)
        return response

    async def _load(self, request: web.Request) -> web.Response:
        body = await _body(request)
        self.received.append(body)
        return to_response(self.load(body))

    async def _unload(self, request: web.Request) -> web.Response:
        body = await _body(request)
        self.received.append(body)
        return to_response(self.unload(body))

    async def _models(self, request: web.Request) -> web.Response:
        return to_response(self.engine.models())

    async def _healthz(self, request: web.Request) -> web.Response:
        return to_response(Reply(200, texts.dumps({"status": "ok"}), texts.JSON))


async def _body(request: web.Request) -> dict[str, object]:
    try:
        document = json.loads(await request.text())
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _error(status: int, message: str) -> Reply:
    return Reply(status, texts.dumps({"error": message}), texts.JSON)


def _strings(value: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _engine_message(body: str) -> str:
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return body
    return str(error.get("message")) if isinstance(error, dict) else body
