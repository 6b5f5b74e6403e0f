"""SGLang's runtime LoRA API, called directly on the engine port (pod label `model.aibrix.ai/engine=sglang`).

* load: `POST /load_lora_adapter {"lora_name", "lora_path"}` -> 200 JSON `{"success": true, "error_message":
  null, "loaded_adapters": {name: path}}`, or 400 with `"success": false` and the reason in `error_message`
  ("Failed to load LoRA adapter <name> because it is already loaded", rank incompatibilities, a missing
  `adapter_config.json`). "Already loaded" is success only when `loaded_adapters` shows the same path.
* unload: `POST /unload_lora_adapter {"lora_name"}` -> 200, or 400 "LoRA with name <name> does not exist",
  which counts as unloaded.
* list and verify: `GET /v1/models` (SGLang versions that list adapters there; older ones list only the base).
"""

from __future__ import annotations

import json

from modeladapter.adapters.answers import interpret_failure, parse_error_body, unexpected
from modeladapter.adapters.artifacts import lora_path_for_engine, same_path
from modeladapter.adapters.base import HttpEngineClient, LoadRequest, check_name
from modeladapter.adapters.outcomes import (
    AdapterAlreadyLoaded,
    AdapterNotLoaded,
    AlreadyLoadedWithOtherPath,
    LoadOutcome,
    LoadResult,
    ProtocolError,
    UnloadOutcome,
    UnloadResult,
)

LOAD_PATH = "/load_lora_adapter"
UNLOAD_PATH = "/unload_lora_adapter"


class SglangClient(HttpEngineClient):
    async def load(self, request: LoadRequest, *, replace: bool = False) -> LoadResult:
        name = check_name(request.name)
        lora_path = lora_path_for_engine(request.artifact_url)
        await self.check_base_model(request)
        if replace:
            # SGLang has no in-place load: unload, then load the new path.
            await self.unload(name)
        body = {"lora_name": name, "lora_path": lora_path}
        answer = await self.call("POST", LOAD_PATH, operation="load", body=body)
        if answer.status == 200:
            _expect_success(answer.text, operation="load")
            return LoadResult(name, lora_path, LoadOutcome.LOADED, answer.shown())
        failure = interpret_failure(answer.status, answer.text, operation="load", mask=answer.mask)
        if not isinstance(failure, AdapterAlreadyLoaded):
            raise unexpected(failure)
        loaded = (parse_error_body(answer.text).loaded_adapters or {}).get(name)
        if same_path(loaded, lora_path):
            return LoadResult(name, lora_path, LoadOutcome.ALREADY_LOADED, failure.engine_message)
        raise AlreadyLoadedWithOtherPath(
            f"load: {self.target} already serves an adapter named {name!r} from {loaded!r}, not {lora_path!r}",
            loaded_path=loaded,
            wanted_path=lora_path,
            status=answer.status,
            engine_message=failure.engine_message,
        )

    async def unload(self, name: str) -> UnloadResult:
        check_name(name)
        answer = await self.call("POST", UNLOAD_PATH, operation="unload", body={"lora_name": name})
        if answer.status == 200:
            _expect_success(answer.text, operation="unload")
            return UnloadResult(name, UnloadOutcome.UNLOADED)
        failure = interpret_failure(answer.status, answer.text, operation="unload", mask=answer.mask)
        if isinstance(failure, AdapterNotLoaded):
            return UnloadResult(name, UnloadOutcome.NOT_LOADED)
        raise unexpected(failure)


def _expect_success(text: str, *, operation: str) -> None:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep to parse
        raise ProtocolError(f"{operation}: SGLang answered 200 with a body that is not JSON") from None
    if not isinstance(document, dict) or document.get("success") is not True:
        raise ProtocolError(f'{operation}: SGLang answered 200 without "success": true')
