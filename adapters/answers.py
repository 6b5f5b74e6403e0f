"""Reading what engines answer: error bodies in every shape they come in, `/v1/models`, and what a failed
answer means in the taxonomy (`modeladapter.adapters.outcomes`). Pure: bytes and status in, values out.

Error shapes seen in the wild:

* vLLM >= 0.10.1, nested: `{"error": {"message", "type", "param", "code"}}`;
* vLLM < 0.10.1 and the AIBrix runtime's engine proxy, flat: `{"object": "error", "message", "type", "code"}`;
* vLLM's API-key middleware and the AIBrix runtime: `{"error": "Unauthorized"}`, `{"error": "<text>"}`;
* FastAPI itself (a route that does not exist): `{"detail": "Not Found"}`;
* SGLang: `{"success": false, "error_message": "<text>", "loaded_adapters": {...}}`;
* anything else (a proxy's HTML page, plain text): the text itself, cut to 4 KiB as AIBrix does (after
  masking: `modeladapter.adapters.masking`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from modeladapter.adapters.masking import NO_MASK, SecretMask
from modeladapter.adapters.outcomes import (
    AdapterAlreadyLoaded,
    AdapterNotLoaded,
    ArtifactNotFound,
    EngineError,
    EngineModels,
    EngineRejected,
    EngineUnavailable,
    IncompatibleAdapter,
    InvalidRequest,
    ProtocolError,
    ServedModel,
    Unauthorized,
    Unsupported,
)
from modeladapter.fsm.retriable import DOWNLOAD_COLLIDED

MAX_MESSAGE: Final = 4096
UNAVAILABLE_STATUSES: Final = frozenset({408, 429, 502, 503, 504})

# Lower-cased markers of what the engine says about the adapter, by engine and version.
_ALREADY_LOADED: Final = ("has already been loaded", "because it is already loaded")
_NOT_FOUND: Final = ("no adapter found", "artifact not found", "can't find 'adapter_config.json'")
# The AIBrix runtime reports a failed rename of its own download's `.part` file as "Artifact not found: [Errno 2]
# ...": another download of the same name into the same folder got there first (runtimes sharing `/tmp`). The
# artifact is there; the next attempt finds the finished download.
_DOWNLOAD_COLLIDED: Final = (DOWNLOAD_COLLIDED,)
_INCOMPATIBLE: Final = (
    "greater than max_lora_rank",
    "bias is not supported",
    "is incompatible with the current lora memory pool",
    "currently doesn't support",
    "not included in the specified --lora-target-modules",
)
_UNKNOWN_ADAPTER: Final = ("cannot be found", "does not exist")
_DENIED: Final = ("permission denied", "unauthorized", "forbidden")
_UNSUPPORTED_SOURCE: Final = ("unsupported url scheme",)


@dataclass(frozen=True, slots=True)
class ErrorBody:
    message: str
    type: str | None = None
    loaded_adapters: dict[str, str] | None = None
    """SGLang only: the adapters loaded when it answered, name -> path."""


def parse_error_body(text: str) -> ErrorBody:
    """The message (and type) out of any of the error shapes above."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep to parse
        return ErrorBody(text.strip())
    if not isinstance(document, dict):
        return ErrorBody(text.strip())
    error = document.get("error")
    if isinstance(error, dict):
        return ErrorBody(str(error.get("message", "")), _optional_str(error.get("type")))
    if isinstance(error, str):
        return ErrorBody(error)
    if "error_message" in document or "success" in document:
        loaded = document.get("loaded_adapters")
        adapters = {str(k): _adapter_path(v) for k, v in loaded.items()} if isinstance(loaded, dict) else None
        return ErrorBody(str(document.get("error_message") or ""), None, adapters)
    if "message" in document:
        return ErrorBody(str(document["message"]), _optional_str(document.get("type")))
    if "detail" in document:
        detail = document["detail"]
        return ErrorBody(detail if isinstance(detail, str) else json.dumps(detail))
    return ErrorBody(text.strip())


def interpret_failure(status: int, text: str, *, operation: str, mask: SecretMask = NO_MASK) -> EngineError:
    """The taxonomy entry for a non-success answer to `operation` (e.g. "load", "unload", "list"). The engine's
    message is read as it came, and shown with `mask`'s secrets masked, cut to 4 KiB."""
    body = parse_error_body(text)
    lowered = body.message.lower()
    message = mask.shown(body.message, MAX_MESSAGE) if body.message else f"HTTP {status}"
    said = f"{operation}: engine answered HTTP {status}: {message}"

    def make(error_type: type[EngineError]) -> EngineError:
        return error_type(said, status=status, engine_message=message)

    if status in (401, 403):
        return make(Unauthorized)
    if status in UNAVAILABLE_STATUSES:
        return make(EngineUnavailable)
    if any(marker in lowered for marker in _ALREADY_LOADED):
        return make(AdapterAlreadyLoaded)
    if "[errno" in lowered and any(marker in lowered for marker in _DOWNLOAD_COLLIDED):
        return make(EngineUnavailable)
    if any(marker in lowered for marker in _NOT_FOUND):
        return make(ArtifactNotFound)
    if any(marker in lowered for marker in _INCOMPATIBLE):
        return make(IncompatibleAdapter)
    if any(marker in lowered for marker in _DENIED):
        return make(Unauthorized)
    if any(marker in lowered for marker in _UNSUPPORTED_SOURCE):
        return make(Unsupported)
    if status == 404 and body.type is None and lowered == "not found":
        # FastAPI's own 404: the route does not exist. For vLLM that means runtime LoRA updating is off.
        return Unsupported(
            f"{operation}: engine answered HTTP 404: it has no such endpoint; a vLLM engine needs "
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora",
            status=status,
            engine_message=message,
        )
    if any(marker in lowered for marker in _UNKNOWN_ADAPTER):
        return make(AdapterNotLoaded)
    if 400 <= status < 500:
        return make(InvalidRequest)
    if status >= 500:
        return make(EngineRejected)
    return make(ProtocolError)


def unexpected(error: EngineError) -> EngineError:
    """Where "already loaded" or "not loaded" cannot be an answer, say what they mean as a public error."""
    if isinstance(error, AdapterAlreadyLoaded):
        return InvalidRequest(error.message, status=error.status, engine_message=error.engine_message)
    if isinstance(error, AdapterNotLoaded):
        return InvalidRequest(error.message, status=error.status, engine_message=error.engine_message)
    return error


def parse_models(text: str, *, mask: SecretMask = NO_MASK) -> EngineModels:
    """`/v1/models` -> `EngineModels`; a body that is not an OpenAI model list is a `ProtocolError`."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep to parse
        raise ProtocolError(
            f"list: /v1/models answered something that is not JSON: {mask.shown(text, 200)!r}"
        ) from None
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list):
        raise ProtocolError("list: /v1/models answered JSON without a `data` list")
    models = []
    for entry in data:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise ProtocolError(f"list: /v1/models has an entry without a string `id`: {mask.shown(repr(entry), 200)}")
        models.append(ServedModel(entry["id"], _optional_str(entry.get("root")), _optional_str(entry.get("parent"))))
    return EngineModels(tuple(models))


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _adapter_path(value: object) -> str:
    # SGLang has answered both {name: path} and {name: {lora_path: ...}} across versions.
    if isinstance(value, dict):
        return str(value.get("lora_path", ""))
    return str(value)
