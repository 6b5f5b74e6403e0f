"""The port the operator programs against: `EngineClient`, and what a load asks for (`LoadRequest`).

Every engine client answers the same four questions about one pod's engine, with typed results or a typed
`EngineError` (`modeladapter.adapters.outcomes`):

* `list_models()` — what it serves (`GET /v1/models`);
* `load(request)` — load a LoRA adapter under `request.name` (already loaded from the same path is success);
* `verify(name, artifact_url)` — is it there, from that artifact (`/v1/models` id and `root`);
* `unload(name)` — remove it (an adapter the engine does not know counts as unloaded).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from modeladapter.adapters.answers import interpret_failure, parse_models, unexpected
from modeladapter.adapters.artifacts import lora_path_for_engine, same_path
from modeladapter.adapters.connections import Answer, ApiKey, EngineConnections
from modeladapter.adapters.masking import NO_MASK, SecretMask
from modeladapter.adapters.outcomes import (
    EngineError,
    EngineModels,
    IncompatibleAdapter,
    InvalidRequest,
    LoadResult,
    ProtocolError,
    UnloadResult,
    Verification,
)
from modeladapter.adapters.selection import EngineTarget

MAX_NAME_LENGTH = 253  # a Kubernetes object name, which the LoRA name is


@dataclass(frozen=True, slots=True)
class LoadRequest:
    """One LoRA adapter to load, as the ModelAdapter describes it."""

    name: str
    """The LoRA name the engine will serve: the ModelAdapter's `metadata.name`."""
    artifact_url: str
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)
    """The `credentialsSecretRef` Secret's data, sent to the runtime sidecar only. Never shown by `repr`."""
    additional_config: Mapping[str, str] = field(default_factory=dict, repr=False)
    """`spec.additionalConfig`, sent to the runtime sidecar only (it may hold keys). Never shown by `repr`."""
    base_model: str | None = None
    """`spec.baseModel`: when given, the engine must serve it, or the load fails as `IncompatibleAdapter`."""


@dataclass(frozen=True, slots=True)
class Completion:
    model: str
    text: str
    finish_reason: str | None


class EngineClient(Protocol):
    target: EngineTarget

    async def list_models(self) -> EngineModels: ...

    async def load(self, request: LoadRequest, *, replace: bool = False) -> LoadResult: ...

    async def verify(self, name: str, artifact_url: str) -> Verification: ...

    async def unload(self, name: str) -> UnloadResult: ...

    async def complete(self, model: str, prompt: str, *, max_tokens: int = 8) -> Completion: ...


class HttpEngineClient:
    """What every engine shares: the call itself, `/v1/models`, verification and completions."""

    def __init__(self, target: EngineTarget, *, connections: EngineConnections, api_key: ApiKey | None) -> None:
        self.target = target
        self._connections = connections
        self._api_key = api_key

    def __repr__(self) -> str:
        keyed = "with" if self._api_key is not None else "without"
        return f"<{type(self).__name__} {self.target} {keyed} API key>"

    async def call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        body: Mapping[str, object] | None = None,
        timeout: float | None = None,
        secrets: SecretMask = NO_MASK,
    ) -> Answer:
        """One call with this client's key; `secrets` masks the secret values `body` carries in the answer."""
        return await self._connections.request(
            self.target,
            method,
            path,
            operation=operation,
            api_key=self._api_key,
            body=body,
            timeout=timeout,
            secrets=secrets,
        )

    async def list_models(self) -> EngineModels:
        """The engine's `/v1/models`, within the connections' listing time limit (10 s)."""
        answer = await self.call("GET", "/v1/models", operation="list", timeout=self._connections.list_timeout)
        if answer.status != 200:
            raise unexpected(interpret_failure(answer.status, answer.text, operation="list", mask=answer.mask))
        return parse_models(answer.text, mask=answer.mask)

    async def verify(self, name: str, artifact_url: str) -> Verification:
        served = (await self.list_models()).find(name)
        if served is None or not served.is_adapter:
            return Verification.MISSING
        return Verification.LOADED if self.root_matches(served.root, artifact_url) else Verification.OTHER_PATH

    def root_matches(self, root: str | None, artifact_url: str) -> bool:
        """Does `/v1/models`' `root` for an adapter show it came from `artifact_url`?"""
        return same_path(root, lora_path_for_engine(artifact_url))

    async def complete(self, model: str, prompt: str, *, max_tokens: int = 8) -> Completion:
        """One greedy OpenAI completion: proof that the engine really serves `model`."""
        body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
        answer = await self.call("POST", "/v1/completions", operation="complete", body=body)
        if answer.status != 200:
            raise unexpected(interpret_failure(answer.status, answer.text, operation="complete", mask=answer.mask))
        return parse_completion(answer.text)

    async def check_base_model(self, request: LoadRequest) -> None:
        if request.base_model is None:
            return
        served = (await self.list_models()).base_models
        if request.base_model not in {model.id for model in served}:
            names = ", ".join(model.id for model in served) or "nothing"
            raise IncompatibleAdapter(
                f"load: base model {request.base_model!r} is not served by {self.target} (it serves {names})"
            )


def check_name(name: str) -> str:
    """The LoRA name must be a non-empty Kubernetes-style name; engines reject or mangle anything else."""
    if not isinstance(name, str) or not name:
        raise InvalidRequest("the LoRA adapter name is empty")
    if len(name) > MAX_NAME_LENGTH or any(ch.isspace() or ch == "/" for ch in name):
        raise InvalidRequest(f"{name[:80]!r} is not a valid LoRA adapter name")
    return name


def parse_completion(text: str) -> Completion:
    try:
        document = json.loads(text)
        choice = document["choices"][0]
        return Completion(str(document["model"]), str(choice["text"]), choice.get("finish_reason"))
    except (ValueError, KeyError, IndexError, TypeError, RecursionError) as error:
        raise ProtocolError(f"complete: the engine answered an unreadable completion ({error!r})") from None


__all__ = ["Completion", "EngineClient", "EngineError", "HttpEngineClient", "LoadRequest", "check_name"]
