"""The AIBrix runtime sidecar's LoRA API on port 8080 (`aibrix-modeladapter.md` §2.7 and §5).

The sidecar downloads the artifact (Hugging Face, S3, GCS, TOS) into `/tmp/aibrix/adapters/<name>` with the
credentials it is given, then asks its engine to load that directory:

* load: `POST /v1/lora_adapter/load {"lora_name", "artifact_url", "credentials"?, "additional_config"?}` ->
  200 `{"status": "success", "message", "local_path", "engine_response"}`; failures are 500 `{"error": "..."}`
  ("Artifact not found: ...", "Permission denied: ...", "Engine error: ...", "Unsupported URL scheme ...").
* unload: `POST /v1/lora_adapter/unload {"lora_name", "cleanup_local": true}` -> 200 whatever the engine said:
  the sidecar logs the engine's failure (unknown adapter, engine unreachable) and answers 200 anyway
  (aibrix 0.8.0, `runtime/artifact_service.py`, `unload_adapter`).
* list and verify: `GET /v1/models`, proxied to the engine.

Differences from AIBrix, all so that accepted URLs actually load and unloads are true:

* `hf://` is sent as `huggingface://` and `gs://` as `gcs://` (the sidecar knows only the long names);
* an object-store URL (`s3://`, `gcs://`, `gs://`, `tos://`) is sent with a trailing `/`: the sidecar downloads
  a folder only when the key ends in `/`, and treats `s3://bucket/adapter` as one object, which fails
  ("S3 object not found"). An adapter is always a folder (`adapter_config.json` and the weights);
* an unload counts only once the engine's listing, read through the sidecar, no longer shows the adapter, and
  is `NotLoaded` if the listing did not show it before.

As in AIBrix, an adapter the engine already lists is not downloaded again; verification compares names only,
because `root` is the sidecar's local directory, not the artifact URL.
"""

from __future__ import annotations

from modeladapter.adapters.answers import interpret_failure, unexpected
from modeladapter.adapters.artifacts import SIDECAR_ONLY_SCHEMES, ArtifactScheme, parse_artifact_url
from modeladapter.adapters.base import Completion, HttpEngineClient, LoadRequest, check_name
from modeladapter.adapters.masking import NO_MASK, SecretMask
from modeladapter.adapters.outcomes import (
    AdapterAlreadyLoaded,
    AdapterNotLoaded,
    EngineUnavailable,
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
    """The `artifact_url` the sidecar understands for an accepted `artifactURL`: long scheme names, and an
    object-store location as a folder (`s3://bucket/adapter/`), with or without the slash in the spec."""
    artifact = parse_artifact_url(url)
    scheme = _SIDECAR_SCHEMES.get(artifact.scheme, artifact.scheme.value)
    if artifact.scheme in SIDECAR_ONLY_SCHEMES:
        return f"{scheme}://{artifact.location}/"
    return f"{scheme}://{artifact.location}" if artifact.scheme in _SIDECAR_SCHEMES else url


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
        """Unload through the sidecar, then check the engine's listing: the sidecar's 200 says nothing (it
        answers 200 when the engine refused or could not be reached)."""
        check_name(name)
        listed_before = (await self.list_models()).find(name) is not None
        body = {"lora_name": name, "cleanup_local": True}
        answer = await self.call("POST", UNLOAD_PATH, operation="unload", body=body)
        if answer.status not in (200, 201):
            failure = interpret_failure(answer.status, answer.text, operation="unload", mask=answer.mask)
            if not isinstance(failure, AdapterNotLoaded):
                raise unexpected(failure)
        if (await self.list_models()).find(name) is not None:
            raise EngineUnavailable(
                f"unload: {self.target} answered {answer.status} to the unload of {name!r}, "
                "but the engine still lists it"
            )
        return UnloadResult(name, UnloadOutcome.UNLOADED if listed_before else UnloadOutcome.NOT_LOADED)

    def root_matches(self, root: str | None, artifact_url: str) -> bool:
        parse_artifact_url(artifact_url)  # still reject a malformed URL
        return True

    async def complete(self, model: str, prompt: str, *, max_tokens: int = 8) -> Completion:
        raise Unsupported(f"complete: {self.target} is the AIBrix runtime sidecar, which serves no completions")
