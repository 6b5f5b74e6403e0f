"""The simulated engine's HTTP face: vLLM's (or SGLang's) routes, its middleware (faults, the API key, the
calls log) and the handlers, each turning a request into a call of `SimulatedEngine`'s in-process API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from aiohttp import web

from modeladapter.sandbox.engine import vllm_texts as texts
from modeladapter.sandbox.engine import wire
from modeladapter.sandbox.engine.faults import Route
from modeladapter.sandbox.engine.server import GUARDED_PREFIXES, MAX_CALLS_KEPT, Call, EngineFlavor, SimulatedEngine
from modeladapter.sandbox.engine.wire import Reply, to_response


class EngineApp:
    def __init__(self, engine: SimulatedEngine) -> None:
        self.engine = engine

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.on_response_prepare.append(wire.look_like_uvicorn)
        self._routes(app)
        return app

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/health", self._health)
        app.router.add_get("/ping", self._health)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/completions", self._completions)
        if (
            self.engine.flavor is EngineFlavor.SGLANG
        ):  # SGLang serves /metrics only with --enable-metrics: not simulated
            app.router.add_post("/load_lora_adapter", self._load)
            app.router.add_post("/unload_lora_adapter", self._unload)
        else:
            app.router.add_post("/v1/load_lora_adapter", self._load)
            app.router.add_post("/v1/unload_lora_adapter", self._unload)
            app.router.add_get("/metrics", self._metrics)
            if self.engine.dev_mode:
                app.router.add_post("/reset_prefix_cache", self._reset_prefix_cache)

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        route = wire.route_of(request.path)
        fault = self.engine.faults.take(route)
        if fault is not None and fault.delay:
            # A slow completion is a running request: it holds its KV blocks, and /metrics counts it, while it lasts.
            with contextlib.ExitStack() as running:
                if route is Route.COMPLETIONS:
                    running.enter_context(self.engine.prefix_cache.running_request())
                    running.enter_context(self._in_flight(await self._requested_model(request)))
                await asyncio.sleep(fault.delay)
        if fault is not None and fault.drop:
            self._record(request, None)
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)  # never written: the connection is gone
        if fault is not None and fault.status is not None:
            body, content_type = fault.answer()
            return self._respond(request, Reply(fault.status, body, content_type))
        guarded = (
            self.engine.api_key is not None
            and request.path.startswith(GUARDED_PREFIXES)
            and request.method != "OPTIONS"
        )
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if guarded and (scheme.lower() != "bearer" or key != self.engine.api_key):
            return self._respond(request, Reply(401, texts.UNAUTHORIZED_BODY, texts.JSON))
        try:
            response = await handler(request)
        except web.HTTPMethodNotAllowed as error:
            response = self._respond(request, Reply(405, texts.dumps({"detail": "Method Not Allowed"}), texts.JSON))
            response.headers["Allow"] = ", ".join(sorted(error.allowed_methods))
            return response
        except web.HTTPNotFound:
            return self._respond(request, Reply(404, texts.dumps({"detail": "Not Found"}), texts.JSON))
        self._record(request, response.status)
        return response

    def _respond(self, request: web.Request, reply: Reply) -> web.Response:
        self._record(request, reply.status)
        return to_response(reply)

    def _record(self, request: web.Request, status: int | None) -> None:
        self.engine.calls.append(Call(request.method, request.path, status))
        del self.engine.calls[:-MAX_CALLS_KEPT]

    async def _requested_model(self, request: web.Request) -> str | None:
        """The model a completion request names (the base model if none), or None if the body says nothing
        usable; aiohttp keeps the body, so the handler reads it again."""
        try:
            body = await request.json()
        except ValueError:
            return None
        model = (body.get("model") or self.engine.served_model_name) if isinstance(body, dict) else None
        return model if isinstance(model, str) else None

    def _in_flight(self, model: str | None) -> contextlib.AbstractContextManager[None]:
        """Counted in /metrics while it lasts, if it names a model this engine serves (vLLM's API server refuses
        any other before the engine sees it)."""
        if model is None or (model != self.engine.served_model_name and model not in self.engine.adapters):
            return contextlib.nullcontext()
        return self.engine.metrics.request(model)

    async def _health(self, request: web.Request) -> web.Response:
        return to_response(Reply(200, "", None))

    async def _metrics(self, request: web.Request) -> web.Response:
        body, content_type = self.engine.metrics.render(request.headers.get("Accept"))
        return web.Response(status=200, body=body, headers={"Content-Type": content_type})

    async def _models(self, request: web.Request) -> web.Response:
        return to_response(self.engine.models())

    async def _load(self, request: web.Request) -> web.Response:
        body, problem = await wire.json_body(request)
        if problem is not None:
            return to_response(problem)
        assert body is not None
        errors = wire.field_errors(body, required=("lora_name", "lora_path"), strings=("lora_name", "lora_path"),
                                   booleans=("load_inplace", "is_3d_lora_weight"))  # fmt: skip
        if errors:
            return to_response(Reply(400, texts.validation_body(errors), texts.JSON))
        return to_response(self.engine.load(str(body["lora_name"]), str(body["lora_path"]),
                                     load_inplace=bool(texts.lax_bool(body.get("load_inplace", False)))))  # fmt: skip

    async def _unload(self, request: web.Request) -> web.Response:
        body, problem = await wire.json_body(request)
        if problem is not None:
            return to_response(problem)
        assert body is not None
        errors = wire.field_errors(body, required=("lora_name",), strings=("lora_name",), booleans=())
        if errors:
            return to_response(Reply(400, texts.validation_body(errors), texts.JSON))
        return to_response(self.engine.unload(str(body["lora_name"])))

    async def _reset_prefix_cache(self, request: web.Request) -> web.Response:
        """`serve/dev/cache/api_router.py`: two boolean query parameters, a 200 `{"success": bool}`."""
        flags, problem = wire.query_flags(request, ("reset_running_requests", "reset_external"))
        if problem is not None:
            return to_response(problem)
        success = self.engine.reset_prefix_cache(reset_running_requests=flags["reset_running_requests"],
                                          reset_external=flags["reset_external"])  # fmt: skip
        return to_response(Reply(200, texts.reset_prefix_cache_body(success), texts.JSON))

    async def _completions(self, request: web.Request) -> web.Response:
        body, problem = await wire.json_body(request)
        if problem is not None:
            return to_response(problem)
        assert body is not None
        errors = wire.field_errors(body, required=("prompt",), strings=("prompt",), booleans=())
        if errors:
            return to_response(Reply(400, texts.validation_body(errors), texts.JSON))
        model = body.get("model") or self.engine.served_model_name
        max_tokens = body.get("max_tokens", 16)
        if not isinstance(model, str) or not isinstance(max_tokens, int) or max_tokens < 1:
            return to_response(wire.vllm_error("max_tokens must be at least 1 and model a string",
                                               "BadRequestError", 400))  # fmt: skip
        return to_response(self.engine.complete(model, str(body["prompt"]), min(max_tokens, self.engine.max_model_len)))
