"""Scripted engines for the fast reconcile tier: the `EngineClient` port's contract, in memory, with failures
queued by the test.

Each pod IP has one engine. It keeps what it serves (LoRA name -> the path a direct engine is given, as vLLM's
`/v1/models` shows it in `root`), answers as the port promises (loading the same path again is success, another
path is `AlreadyLoadedWithOtherPath` unless replaced, unloading an unknown adapter is `NotLoaded`), and records
every call. `fail(operation, error, times)` makes the next calls of one operation fail; `on_call` lets a test
look at the world at the moment a call arrives (what the event log says while a load is in flight, say).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from modeladapter.adapters.artifacts import lora_path_for_engine, same_path
from modeladapter.adapters.base import Completion, LoadRequest
from modeladapter.adapters.connections import ApiKey
from modeladapter.adapters.outcomes import (
    AlreadyLoadedWithOtherPath,
    EngineError,
    EngineModels,
    LoadOutcome,
    LoadResult,
    ServedModel,
    UnloadOutcome,
    UnloadResult,
    Verification,
)
from modeladapter.adapters.selection import EngineKind, EngineTarget

Operation = Literal["load", "list", "unload", "complete"]
BASE_MODEL = "qwen-coder-1-5b-instruct"


@dataclass
class ScriptedEngine:
    target: EngineTarget
    served: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[Operation, str]] = field(default_factory=list)
    keys: list[str | None] = field(default_factory=list)
    """The API key each call carried (revealed: the tests look for leaks elsewhere)."""
    on_call: Callable[[Operation, str], Awaitable[None]] | None = None
    _failures: dict[Operation, deque[EngineError]] = field(default_factory=lambda: defaultdict(deque))

    def fail(self, operation: Operation, error: EngineError, *, times: int = 1) -> None:
        self._failures[operation].extend([error] * times)

    def unload_by_another_client(self, name: str) -> None:
        """The engine stops listing the adapter because someone else unloaded it (what a restart does to every
        adapter). Not an eviction: vLLM keeps listing what it evicts from its caches."""
        self.served.pop(name, None)

    def count(self, operation: Operation) -> int:
        return sum(1 for op, _ in self.calls if op == operation)

    async def _call(self, operation: Operation, name: str) -> None:
        self.calls.append((operation, name))
        if self.on_call is not None:
            await self.on_call(operation, name)
        if self._failures[operation]:
            raise self._failures[operation].popleft()

    async def list_models(self) -> EngineModels:
        await self._call("list", "")
        adapters = [ServedModel(id=name, root=path, parent=BASE_MODEL) for name, path in self.served.items()]
        return EngineModels((ServedModel(id=BASE_MODEL, root=BASE_MODEL, parent=None), *adapters))

    async def load(self, request: LoadRequest, *, replace: bool = False) -> LoadResult:
        await self._call("load", request.name)
        path = lora_path_for_engine(request.artifact_url)
        loaded = self.served.get(request.name)
        if loaded is not None and not replace:
            if same_path(loaded, path):
                return LoadResult(request.name, path, LoadOutcome.ALREADY_LOADED)
            message = f"load: the adapter '{request.name}' has already been loaded from {loaded}"
            raise AlreadyLoadedWithOtherPath(message, loaded_path=loaded, wanted_path=path, status=400)
        self.served[request.name] = path
        return LoadResult(request.name, path, LoadOutcome.LOADED)

    async def verify(self, name: str, artifact_url: str) -> Verification:
        await self._call("list", name)
        loaded = self.served.get(name)
        if loaded is None:
            return Verification.MISSING
        return Verification.LOADED if same_path(loaded, lora_path_for_engine(artifact_url)) else Verification.OTHER_PATH

    async def unload(self, name: str) -> UnloadResult:
        await self._call("unload", name)
        if self.served.pop(name, None) is None:
            return UnloadResult(name, UnloadOutcome.NOT_LOADED)
        return UnloadResult(name, UnloadOutcome.UNLOADED)

    async def complete(self, model: str, prompt: str, *, max_tokens: int = 8) -> Completion:
        await self._call("complete", model)
        return Completion(model, "", "length")


class ScriptedEngines:
    """The `EngineClients` of the fast tier: one scripted engine per pod IP, created when first reached."""

    def __init__(self) -> None:
        self.by_ip: dict[str, ScriptedEngine] = {}

    def client(self, target: EngineTarget, *, api_key: ApiKey | str | None = None) -> ScriptedEngine:
        engine = self.by_ip.setdefault(target.host, ScriptedEngine(target))
        engine.keys.append(api_key.reveal() if isinstance(api_key, ApiKey) else api_key)
        return engine

    def at(self, ip: str) -> ScriptedEngine:
        """The engine of the pod with this IP (its port and kind as a vLLM pod has them)."""
        return self.by_ip.setdefault(ip, ScriptedEngine(EngineTarget(EngineKind.VLLM, ip, 8000)))
