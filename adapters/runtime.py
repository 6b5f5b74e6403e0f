"""The AIBrix runtime sidecar's LoRA API on port 8080 (`aibrix-modeladapter.md` §2.7 and §5).

The sidecar downloads the artifact (Hugging Face, S3, GCS, TOS) into `/tmp/aibrix/adapters/<name>` with the
credentials it is given, then asks its engine to load that directory:

* load: `POST /v1/lora_adapter/load {"lora_name", "artifact_url", "credentials"?, "additional_config"?}` ->
  200 `{"status": "success", "message", "local_path", "engine_response"}`; failures are 500 `{"error": "..."}`
  ("Artifact not found: ...", "Permission denied: ...", "Engine error: ...", "Unsupported URL scheme ...").
* unload: `POST /v1/lora_adapter/unload {"lora_name", "cleanup_local": true}` -> 200 (the sidecar ignores the
  engine's answer, so an unknown adapter also comes back as unloaded).
* list and verify: `GET /v1/models`, proxied to the engine.

Two differences from AIBrix, both so that accepted URLs actually load: `hf://` is sent as `huggingface://` and
`gs://` as `gcs://` (the sidecar knows only the long names). As in AIBrix, an adapter the engine already lists
is not downloaded again; verification compares names only, because `root` is the sidecar's local directory,
not the artifact URL.
"""

from __future__ import annotations

from modeladapter.adapters.answers import interpret_failure, unexpected
from modeladapter.adapters.artifacts import ArtifactScheme, parse_artifact_url
from modeladapter.adapters.base import Completion, HttpEngineClient, LoadRequest, check_name
from modeladapter.adapters.masking import NO_MASK, SecretMask
from modeladapter.adapters.outcomes import (
    AdapterAlreadyLoaded,
    AdapterNotLoaded,
    LoadOutcome,
    LoadResult,
    UnloadOutcome,
    UnloadResult,
    Unsupported,
)

LOAD_PATH = "/v1/lora_adapter/load"
UNLOAD_PATH = "/v1/lora_adapter/unload"
_SIDECAR_SCHEMES = {ArtifactScheme.HF: "huggingface", ArtifactScheme.GS: "gcs"}


def sidecar_artifact_url(url: str) -> str:
    """The `artifact_url` the sidecar understands for an accepted `artifactURL`."""
    artifact = parse_artifact_url(url)
    renamed = _SIDECAR_SCHEMES.get(artifact.scheme)
    return f"{renamed}://{artifact.location}" if renamed else url


class RuntimeSidecarClient(HttpEngineClient):
    async def load(self, request: LoadRequest, *, replace: bool = False) -> LoadResult:
        name = check_name(request.name)
        artifact_url = sidecar_artifact_url(request.artifact_url)
        await self.check_base_model(request)
        if replace:
            await self.unload(name)
        elif (await self.list_models()).find(name) is not None:
            return LoadResult(name, artifact_url, LoadOutcome.ALREADY_LOADED, "listed by the engine")
        body: dict[str, object] = {"lora_name": name, "artifact_url": artifact_url}
        if request.credentials:
            body["credentials"] = dict(request.credentials)
        if request.additional_config:
            body["additional_config"] = dict(request.additional_config)
        secrets = SecretMask(request.credentials.values()) if request.credentials else NO_MASK
        answer = await self.call("POST", LOAD_PATH, operation="load", body=body, secrets=secrets)
        if answer.status in (200, 201):
            return LoadResult(name, artifact_url, LoadOutcome.LOADED, answer.shown())
        failure = interpret_failure(answer.status, answer.text, operation="load", mask=answer.mask)
        if isinstance(failure, AdapterAlreadyLoaded):
            # Loaded by someone else since the list above; its path cannot be compared (see the docstring).
            return LoadResult(name, artifact_url, LoadOutcome.ALREADY_LOADED, failure.engine_message)
        raise unexpected(failure)

    async def unload(self, name: str) -> UnloadResult:
        check_name(name)
        body = {"lora_name": name, "cleanup_local": True}
        answer = await self.call("POST", UNLOAD_PATH, operation="unload", body=body)
        if answer.status in (200, 201):
            return UnloadResult(name, UnloadOutcome.UNLOADED)
        failure = interpret_failure(answer.status, answer.text, operation="unload", mask=answer.mask)
        if isinstance(failure, AdapterNotLoaded):
            return UnloadResult(name, UnloadOutcome.NOT_LOADED)
        raise unexpected(failure)

    def root_matches(self, root: str | None, artifact_url: str) -> bool:
        parse_artifact_url(artifact_url)  # still reject a malformed URL
        return True

    async def complete(self, model: str, prompt: str, *, max_tokens: int = 8) -> Completion:
        raise Unsupported(f"complete: {self.target} is the AIBrix runtime sidecar, which serves no completions")
