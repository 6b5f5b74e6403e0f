"""vLLM's runtime LoRA API, called directly on the engine port (vLLM 0.32/0.33; `lora-serving-landscape.md` §1).

* load: `POST /v1/load_lora_adapter {"lora_name", "lora_path"[, "load_inplace": true]}` -> 200 plain text
  `Success: LoRA adapter '<name>' added successfully.`; 400 "has already been loaded" is success only when
  `/v1/models` shows the same `root`; 404 "No adapter found"; 500 rank/bias; 401 without the right key.
* unload: `POST /v1/unload_lora_adapter {"lora_name"}` -> 200; 404 "cannot be found" counts as unloaded.
* list and verify: `GET /v1/models`, adapters have `root` = their `lora_path` and `parent` = the base model.
* forget cached prefixes: `POST /reset_prefix_cache[?reset_running_requests=true]` -> 200 `{"success": bool}`
  (false while running requests hold blocks, unless they may be preempted); served only with
  `VLLM_SERVER_DEV_MODE=1` (404 otherwise), never behind `--api-key`. An update needs it when the new version comes from the same path as the old one, since vLLM 0.32
  keys a LoRA request's KV blocks on (name, path) (`real-parts.md`).

Replacing an adapter is an unload, then a load: never `load_inplace`, which vLLM keeps in the adapter's request
so the worker may re-read it from disk on later requests (vllm #33791).
"""

from __future__ import annotations

import json

from modeladapter.adapters.answers import interpret_failure, unexpected
from modeladapter.adapters.artifacts import lora_path_for_engine, same_path
from modeladapter.adapters.base import HttpEngineClient, LoadRequest, check_name
from modeladapter.adapters.outcomes import (
    AdapterAlreadyLoaded,
    AdapterNotLoaded,
    AlreadyLoadedWithOtherPath,
    EngineUnavailable,
    LoadOutcome,
    LoadResult,
    UnloadOutcome,
    UnloadResult,
    Unsupported,
)

LOAD_PATH = "/v1/load_lora_adapter"
UNLOAD_PATH = "/v1/unload_lora_adapter"
RESET_PREFIX_CACHE_PATH = "/reset_prefix_cache"


class VllmClient(HttpEngineClient):
    async def load(self, request: LoadRequest, *, replace: bool = False) -> LoadResult:
        """Load `request` under its name; with `replace`, unload whatever the engine serves under that name
        first (an unknown name counts as unloaded)."""
        name = check_name(request.name)
        lora_path = lora_path_for_engine(request.artifact_url)
        await self.check_base_model(request)
        if replace:
            await self.unload(name)
        body: dict[str, object] = {"lora_name": name, "lora_path": lora_path}
        answer = await self.call("POST", LOAD_PATH, operation="load", body=body)
        if answer.status == 200:
            return LoadResult(name, lora_path, LoadOutcome.LOADED, answer.shown())
        failure = interpret_failure(answer.status, answer.text, operation="load", mask=answer.mask)
        if not isinstance(failure, AdapterAlreadyLoaded):
            raise unexpected(failure)
        served = (await self.list_models()).find(name)
        if served is not None and same_path(served.root, lora_path):
            return LoadResult(name, lora_path, LoadOutcome.ALREADY_LOADED, failure.engine_message)
        loaded = served.root if served is not None else None
        raise AlreadyLoadedWithOtherPath(
            f"load: {self.target} already serves an adapter named {name!r} from {loaded!r}, not {lora_path!r}"
            if served is not None
            else f"load: {self.target} says {name!r} is loaded but does not list it (it is being unloaded)",
            loaded_path=loaded,
            wanted_path=lora_path,
            status=answer.status,
            engine_message=failure.engine_message,
        )

    async def reset_prefix_cache(self) -> None:
        """Forget every cached KV block. vLLM answers `{"success": false}` while running requests hold blocks;
        then it is asked again to preempt them first (they are recomputed, not failed). Raises `Unsupported`
        when the engine does not serve the route (no dev mode), `EngineUnavailable` if the reset still fails."""
        for path in (RESET_PREFIX_CACHE_PATH, f"{RESET_PREFIX_CACHE_PATH}?reset_running_requests=true"):
            answer = await self.call("POST", path, operation="reset prefix cache")
            if answer.status == 404:
                raise Unsupported(
                    f"reset prefix cache: {self.target} does not serve {RESET_PREFIX_CACHE_PATH}; start vLLM with "
                    "VLLM_SERVER_DEV_MODE=1 so an update from the same path cannot answer from the old version's "
                    "cache",
                    status=404,
                )
            if answer.status != 200:
                raise unexpected(
                    interpret_failure(answer.status, answer.text, operation="reset prefix cache", mask=answer.mask)
                )
            if _reset_succeeded(answer.text):
                return
        raise EngineUnavailable(f"reset prefix cache: {self.target} could not free its cached blocks; will retry")

    async def unload(self, name: str) -> UnloadResult:
        check_name(name)
        answer = await self.call("POST", UNLOAD_PATH, operation="unload", body={"lora_name": name})
        if answer.status == 200:
            return UnloadResult(name, UnloadOutcome.UNLOADED)
        failure = interpret_failure(answer.status, answer.text, operation="unload", mask=answer.mask)
        if isinstance(failure, AdapterNotLoaded) and answer.status == 404:
            return UnloadResult(name, UnloadOutcome.NOT_LOADED)
        raise unexpected(failure)


def _reset_succeeded(text: str) -> bool:
    """vLLM 0.32 answers `{"success": true|false}`; an older one answered an empty 200, which meant success."""
    try:
        document = json.loads(text) if text.strip() else {}
    except ValueError:
        return True
    return not (isinstance(document, dict) and document.get("success") is False)
