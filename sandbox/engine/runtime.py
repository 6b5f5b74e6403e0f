"""A simulated AIBrix runtime sidecar (`aibrix_runtime`, port 8080) in front of an engine.

It answers as the sidecar does (`aibrix-modeladapter.md` §5; aibrix 0.8.0's `app.py` and
`runtime/artifact_service.py`). A load with `artifact_url` "downloads" the artifact from `artifacts` (URL -> a
local adapter directory, standing in for S3, GCS, TOS and the Hugging Face hub), with the credentials
`required_credentials` asks for, into one folder per adapter name, `<downloads>/<lora_name>` (the real runtime's
`/tmp/aibrix/adapters/<lora_name>`), then asks the engine to load that folder: `/v1/models` shows it as `root`
for every version. As in the real runtime, a folder holding the `.aibrix_download_complete` marker is not
downloaded again, whatever the URL (so a new version loads the old files), and an unload with `cleanup_local`
(the default) deletes the folder.

Object stores (`s3://`, `gcs://`, `tos://`) are read as the real downloaders read them: a URL whose key ends in
`/` is a folder (a prefix), looked up in `artifacts` with or without the slash; a key without it is ONE object,
which no adapter is, so it fails with "Artifact not found: S3 object not found: <url>" (GCS, TOS alike). A
folder URL that `artifacts` lacks fails with "Artifact not found: No objects found under S3 prefix: <url>".

After the download, the runtime's own vLLM client refuses names the real one refuses (aibrix 0.8.0,
`openapi/engine/vllm.py`, `_validate_lora_request`: more than 100 characters, or anything but letters,
digits, `-` and `_`): "Engine error: LoRA name must contain only alphanumeric characters, hyphens, and
underscores", and the downloaded files stay behind, marker included. vLLM itself accepts such names.

Failures are 500 `{"error": "..."}`: "Artifact not found: ...", "Permission denied: <url>", "Unsupported URL
scheme: <scheme>", "Engine error: <the engine's message>", "Failed to load adapter: Invalid lora_name: ...".
Unload always answers 200, for an adapter the engine never had or an engine it cannot reach too (the sidecar
logs the engine's answer and ignores it). `GET /v1/models` is the engine's own.

Every real runtime on one machine downloads into the same `/tmp/aibrix/adapters` (it cannot be told
otherwise). Sidecars given the same `downloads` share it the same way: one finds the other's marker and skips
its download, and an unload through either deletes the folder for both.

The engine is a `SimulatedEngine` in this process (the default: faults injected into the engine's HTTP server
do not affect the sidecar; inject into the sidecar's own `faults` instead), or any vLLM server at a base URL
(`engine="http://127.0.0.1:8000"`, `engine_api_key=...`), reached as the real runtime reaches it:
`POST /v1/load_lora_adapter {lora_name, lora_path}`, `POST /v1/unload_lora_adapter`, `GET /v1/models`. The
real runtime retries engine 5xx answers and connection errors 3 times; this one asks once.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from modeladapter.sandbox.engine import vllm_texts as texts
from modeladapter.sandbox.engine.faults import Fault, FaultPlan, Route
from modeladapter.sandbox.engine.server import SimulatedEngine
from modeladapter.sandbox.engine.wire import Reply, to_response

RUNTIME_PORT: Final = 8080
DOWNLOADABLE_SCHEMES: Final = frozenset({"huggingface", "s3", "gcs", "tos"})
DOWNLOAD_COMPLETE_MARKER: Final = ".aibrix_download_complete"
OBJECT_STORES: Final = {"s3": "S3", "gcs": "GCS", "tos": "TOS"}
SAFE_LORA_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
"""The runtime's own check before it makes `<downloads>/<lora_name>`: nothing can escape the downloads root."""
ENGINE_CLIENT_MAX_NAME: Final = 100
"""The runtime's vLLM client refuses longer names, after the download (`_validate_lora_request`)."""


class SimulatedRuntimeSidecar:
    def __init__(
        self,
        engine: SimulatedEngine | str,
        *,
        engine_api_key: str | None = None,
        host: str | None = None,
        port: int = RUNTIME_PORT,
        artifacts: Mapping[str, str | os.PathLike[str]] | None = None,
        required_credentials: Mapping[str, Mapping[str, str]] | None = None,
        downloads: str | os.PathLike[str] | None = None,
    ) -> None:
        if isinstance(engine, SimulatedEngine):
            self.engine: SimulatedEngine | None = engine
            self._link: _EngineLink = _InProcess(engine)
            default_host = engine.host
        else:
            self.engine = None
            self._link = _OverHttp(engine, engine_api_key)
            default_host = urlsplit(engine).hostname or "127.0.0.1"
        self.host = host or default_host
        self.port = port
        self.artifacts = {_as_folder(url): str(path) for url, path in (artifacts or {}).items()}
        """Artifact URL -> the local folder it stands for; object-store URLs are kept as folders (`.../`)."""
        self.required_credentials = {
            _as_folder(url): dict(creds) for url, creds in (required_credentials or {}).items()
        }
        self._own_downloads = downloads is None
        self.downloads = Path(downloads) if downloads is not None else Path(tempfile.mkdtemp(prefix="aibrix-adapters-"))
        """The downloads root: every version of adapter `<name>` goes to `downloads / <name>`. By default a
        temporary directory of this sidecar's own, deleted by `stop()`."""
        self.downloads.mkdir(parents=True, exist_ok=True)
        self.faults = FaultPlan()
        self.received: list[dict[str, object]] = []
        """Every load and unload body received, for tests (credentials included: a test fixture, not a log)."""
        self.downloaded: list[str] = []
        """The artifact URLs actually copied into the downloads root, in order."""
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def folder(self, name: str) -> Path:
        """Where every version of adapter `name` is downloaded to and loaded from."""
        return self.downloads / name

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
        await self._link.close()
        if self._own_downloads:
            shutil.rmtree(self.downloads, ignore_errors=True)

    async def load(self, body: Mapping[str, object]) -> Reply:
        name = body.get("lora_name")
        url = body.get("artifact_url")
        if not isinstance(name, str) or not name or not isinstance(url, str) or not url:
            return _error(422, "lora_name and artifact_url are required")
        if not SAFE_LORA_NAME.match(name):
            return _error(500, f"Failed to load adapter: Invalid lora_name: must match {SAFE_LORA_NAME.pattern}")
        folder = self.folder(name)
        if not (folder / DOWNLOAD_COMPLETE_MARKER).exists():
            problem = self._download(url, folder, {**_strings(body.get("credentials")),
                                                   **_strings(body.get("additional_config"))})  # fmt: skip
            if problem is not None:
                return problem
        refusal = _engine_client_refusal(name)
        if refusal is not None:
            return _error(500, f"Engine error: {refusal}")
        reply = await self._link.load(name, str(folder))
        if reply.status != 200:
            return _error(500, f"Engine error: {_engine_message(reply.body)}")
        return Reply(200, texts.dumps({
            "status": "success",
            "message": f"Successfully loaded adapter {name} from {url}",
            "local_path": str(folder),
            "engine_response": {"message": reply.body},
        }), texts.JSON)  # fmt: skip

    async def unload(self, body: Mapping[str, object]) -> Reply:
        name = body.get("lora_name")
        if not isinstance(name, str) or not name:
            return _error(422, "lora_name is required")
        await self._link.unload(name)  # the sidecar ignores the engine's answer
        if texts.lax_bool(body.get("cleanup_local", True)) is not False:
            if not SAFE_LORA_NAME.match(name):  # the real runtime fails the same way, after the engine's unload
                return Reply(500, "Internal Server Error", "text/plain; charset=utf-8")
            shutil.rmtree(self.folder(name), ignore_errors=True)
        return Reply(200, texts.dumps({"status": "success", "message": f"Successfully unloaded adapter {name}"}),
                     texts.JSON)  # fmt: skip

    def _download(self, url: str, folder: Path, credentials: Mapping[str, str]) -> Reply | None:
        """Copy the artifact at `url` into `folder`, replacing what is there; None when done, else the failure."""
        scheme = url.partition("://")[0] if "://" in url else ""
        if scheme not in DOWNLOADABLE_SCHEMES:
            return _error(500, f"Unsupported URL scheme: {scheme}")
        store = OBJECT_STORES.get(scheme)
        if store is not None and not url.endswith("/"):
            # The real downloaders fetch one object for such a key; an adapter is a folder, so none is found.
            return _error(500, f"Artifact not found: {store} object not found: {url}")
        source = self.artifacts.get(url)
        if source is None or not os.path.isdir(source):
            missing = f"No objects found under {store} prefix: {url}" if store is not None else url
            return _error(500, f"Artifact not found: {missing}")
        required = self.required_credentials.get(url, {})
        if any(credentials.get(key) != value for key, value in required.items()):
            return _error(500, f"Permission denied: {url}")
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(source, folder)
        (folder / DOWNLOAD_COMPLETE_MARKER).touch()
        self.downloaded.append(url)
        return None

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
        return to_response(await self.load(body))

    async def _unload(self, request: web.Request) -> web.Response:
        body = await _body(request)
        self.received.append(body)
        return to_response(await self.unload(body))

    async def _models(self, request: web.Request) -> web.Response:
        return to_response(await self._link.models())

    async def _healthz(self, request: web.Request) -> web.Response:
        return to_response(Reply(200, texts.dumps({"status": "ok"}), texts.JSON))


class _EngineLink(Protocol):
    async def load(self, name: str, path: str) -> Reply: ...
    async def unload(self, name: str) -> Reply: ...
    async def models(self) -> Reply: ...
    async def close(self) -> None: ...


class _InProcess:
    def __init__(self, engine: SimulatedEngine) -> None:
        self.engine = engine

    async def load(self, name: str, path: str) -> Reply:
        return self.engine.load(name, path)

    async def unload(self, name: str) -> Reply:
        return self.engine.unload(name)

    async def models(self) -> Reply:
        return self.engine.models()

    async def close(self) -> None:
        return None


class _Unreachable(Exception):
    pass


class _OverHttp:
    """The real runtime's `VLLMInferenceEngine`: JSON bodies, the key as a bearer token, its words on failure."""

    def __init__(self, base_url: str, api_key: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key is not None else {}
        self._session: aiohttp.ClientSession | None = None

    async def load(self, name: str, path: str) -> Reply:
        try:
            return await self._call("POST", "/v1/load_lora_adapter", {"lora_name": name, "lora_path": path})
        except _Unreachable:
            return _runtime_error(
                f"Cannot connect to inference engine for LoRA adapter '{name}'", "ConnectionError", 502
            )

    async def unload(self, name: str) -> Reply:
        try:
            return await self._call("POST", "/v1/unload_lora_adapter", {"lora_name": name, "lora_int_id": None})
        except _Unreachable:
            return _runtime_error(
                f"Cannot connect to inference engine for LoRA adapter '{name}'", "ConnectionError", 502
            )

    async def models(self) -> Reply:
        try:
            reply = await self._call("GET", "/v1/models", None)
        except _Unreachable:
            return _runtime_error("Cannot connect to inference engine", "ConnectionError", 502)
        if reply.status == 200:
            return reply
        return _runtime_error(f"Failed to list models: {reply.body}", "ServerError", reply.status)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _call(self, method: str, path: str, body: object) -> Reply:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self.headers, timeout=aiohttp.ClientTimeout(total=30))
        try:
            async with self._session.request(method, self.base_url + path, json=body) as answer:
                return Reply(answer.status, await answer.text(), answer.headers.get("Content-Type"))
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _Unreachable from error


def _as_folder(url: str) -> str:
    """An object-store URL as the folder it names (`s3://bucket/adapter/`); any other URL as it is."""
    scheme = url.partition("://")[0] if "://" in url else ""
    return url.rstrip("/") + "/" if scheme in OBJECT_STORES else url


def _engine_client_refusal(name: str) -> str | None:
    """What the runtime's vLLM client says to a name it will not send to the engine, or None."""
    if len(name) > ENGINE_CLIENT_MAX_NAME:
        return f"LoRA name too long (max {ENGINE_CLIENT_MAX_NAME} characters)"
    if not name.replace("-", "").replace("_", "").isalnum():
        return "LoRA name must contain only alphanumeric characters, hyphens, and underscores"
    return None


def _runtime_error(message: str, error_type: str, status: int) -> Reply:
    """The runtime's own `ErrorResponse` (flat, unlike vLLM's nested envelope)."""
    return Reply(status, texts.dumps({"object": "error", "message": message, "type": error_type, "param": None,
                                      "code": status}), texts.JSON)  # fmt: skip


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
    """The message in vLLM's error envelope, or in the runtime's own error; else the whole body."""
    try:
        document = json.loads(body)
    except ValueError:
        return body
    if not isinstance(document, dict):
        return body
    error = document.get("error")
    if isinstance(error, dict):
        return str(error.get("message"))
    message = document.get("message")
    return message if isinstance(message, str) else body
