"""How the simulated servers read requests and write answers the way vLLM's FastAPI app on uvicorn does: bodies
parsed and validated like FastAPI and pydantic, plain-text successes without a Content-Type, uvicorn's headers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from modeladapter.sandbox.engine import vllm_texts as texts
from modeladapter.sandbox.engine.faults import Route

OMIT_CONTENT_TYPE: Final = web.ResponseKey("omit_content_type", bool)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: str
    content_type: str | None
    """None: no Content-Type header at all (vLLM's plain-text successes have none)."""


def to_response(reply: Reply) -> web.Response:
    if reply.content_type is None:
        response = web.Response(status=reply.status, body=reply.body.encode())
        response[OMIT_CONTENT_TYPE] = True
        return response
    media_type, _, _ = reply.content_type.partition(";")
    return web.Response(status=reply.status, body=reply.body.encode(), content_type=media_type,
                        charset="utf-8" if media_type == "text/plain" else None)  # fmt: skip


async def look_like_uvicorn(request: web.Request, response: web.StreamResponse) -> None:
    # vLLM's plain-text successes carry no Content-Type; aiohttp insists on one for a body, so take it out
    # here, after aiohttp has prepared the headers and before they are written.
    if response.get(OMIT_CONTENT_TYPE):
        response.headers.popall("Content-Type", None)
    response.headers["Server"] = "uvicorn"
    response.headers["Vary"] = "Origin"  # vLLM's CORS middleware


def vllm_error(message: str, error_type: str, status: int) -> Reply:
    return Reply(status, texts.error_body(message, error_type, status), texts.JSON)


def route_of(path: str) -> Route:
    if path.endswith("/models"):
        return Route.MODELS
    if path.endswith("unload_lora_adapter"):
        return Route.UNLOAD
    if path.endswith("load_lora_adapter"):
        return Route.LOAD
    if path.endswith("/completions"):
        return Route.COMPLETIONS
    if path in ("/health", "/ping"):
        return Route.HEALTH
    if path == "/metrics":
        return Route.METRICS
    return Route.ANY


async def json_body(request: web.Request) -> tuple[dict[str, object] | None, Reply | None]:
    """vLLM's `validate_json_request` and FastAPI's body parsing: (the JSON object, None) or (None, the 400)."""
    media_type = request.headers.get("Content-Type", "").lower().split(";", 1)[0].strip()
    if media_type != "application/json":
        return None, Reply(400, texts.validation_body([texts.UNSUPPORTED_MEDIA_TYPE]), texts.JSON)
    raw = await request.text()
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as error:
        return None, Reply(400, texts.validation_body([texts.invalid_json(error.pos, error.msg)]), texts.JSON)
    if not isinstance(document, dict):
        return None, Reply(400, texts.validation_body([texts.not_an_object(document)]), texts.JSON)
    return document, None


def field_errors(
    body: dict[str, object], *, required: tuple[str, ...], strings: tuple[str, ...], booleans: tuple[str, ...]
) -> list[dict[str, object]]:
    errors: list[dict[str, object]] = []
    for field in dict.fromkeys((*required, *strings, *booleans)):
        if field not in body:
            if field in required:
                errors.append(texts.missing_field(field, body))
        elif field in strings and not isinstance(body[field], str):
            errors.append(texts.not_a_string(field, body[field]))
        elif field in booleans and texts.lax_bool(body[field]) is None:
            errors.append(texts.not_a_bool(field, body[field]))
    return errors


def query_flags(request: web.Request, names: tuple[str, ...]) -> tuple[dict[str, bool], Reply | None]:
    """FastAPI's `bool = Query(default=False)` parameters: (their values, None) or ({}, the 400)."""
    flags: dict[str, bool] = {}
    errors: list[dict[str, object]] = []
    for name in names:
        given = request.query.getall(name, [])
        value = texts.lax_bool(given[-1]) if given else False  # Starlette takes a repeated parameter's last value
        if value is None:
            errors.append(texts.not_a_bool(name, given[-1], where="query"))
        flags[name] = bool(value)
    if errors:
        return {}, Reply(400, texts.validation_body(errors), texts.JSON)
    return flags, None
