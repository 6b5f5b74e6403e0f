"""The engine calls of one pass: listings, loads and unloads, made concurrently, their outcomes as plain data
for the planner (`modeladapter.fsm.calls`). Errors are masked of every secret value before they are kept.

A load counts only once the engine's `/v1/models` lists the adapter from the artifact asked for; a load the
engine accepted but does not list yet is worth another attempt, like an engine that is not ready.

An update (a load that replaces the artifact a pod served) unloads the old version, loads the new one, and,
when the engine serves both from the same path (always behind the AIBrix runtime, which downloads every
version of an adapter into one folder), makes the vLLM engine forget its cached prefixes: vLLM 0.32 keys a LoRA
request's KV blocks on (name, path), so blocks computed with the old weights would otherwise answer requests
for the new ones. An engine that cannot (vLLM without `VLLM_SERVER_DEV_MODE=1`) fails the update on that pod,
which is left without the adapter, rather than serve what may be stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence

from modeladapter.adapters import outcomes
from modeladapter.adapters.artifacts import lora_path_for_engine, same_path
from modeladapter.adapters.base import EngineClient, LoadRequest
from modeladapter.adapters.outcomes import EngineError, Verification
from modeladapter.adapters.selection import EngineKind, select_engine
from modeladapter.adapters.vllm import VllmClient
from modeladapter.fsm.observations import Listed, Listing
from modeladapter.fsm.plans import CallOutcome
from modeladapter.operator.api.pods import ObservedPod
from modeladapter.operator.reconcile.ports import EngineClients
from modeladapter.operator.reconcile.secrets import Credentials

_LISTED = {
    Verification.LOADED: Listed.LOADED,
    Verification.MISSING: Listed.MISSING,
    Verification.OTHER_PATH: Listed.OTHER_PATH,
}


class EngineCalls:
    """Calls to the engines of one adapter's pods, with its key and labels (which pick the engine's port)."""

    def __init__(
        self,
        clients: EngineClients,
        *,
        adapter_labels: Mapping[str, str],
        credentials: Credentials,
        runtime_sidecar: bool,
    ) -> None:
        self._clients = clients
        self._labels = adapter_labels
        self._credentials = credentials
        self._runtime_sidecar = runtime_sidecar

    def client(self, pod: ObservedPod, *, sidecar: bool = True) -> EngineClient:
        """The API that loads adapters on `pod` (the runtime sidecar where there is one); with `sidecar` False,
        the inference engine itself, where its prefix cache lives. Raises `EngineError` for a pod whose engine
        cannot be driven (no IP, an unknown engine kind)."""
        target = select_engine(
            pod_ip=pod.ip,
            pod_labels=pod.labels,
            container_names=pod.containers,
            adapter_labels=self._labels,
            runtime_sidecar_enabled=self._runtime_sidecar and sidecar,
        )
        return self._clients.client(target, api_key=self._credentials.api_key or None)

    async def listings(
        self, pods: Sequence[ObservedPod], *, name: str, artifacts: Mapping[str, str]
    ) -> dict[str, Listing]:
        """What each pod's engine lists for `name` (`artifacts`: the artifact each pod should serve)."""

        async def list_one(pod: ObservedPod) -> Listing:
            try:
                return Listing(_LISTED[await self.client(pod).verify(name, artifacts[pod.name])])
            except EngineError as error:
                return Listing(Listed.UNREACHABLE, error=self._credentials.scrub(str(error)))

        results = await asyncio.gather(*(list_one(pod) for pod in pods))
        return dict(zip((pod.name for pod in pods), results, strict=True))

    async def loads(
        self, pods: Sequence[ObservedPod], request: LoadRequest, *, replacing: Mapping[str, str] | None = None
    ) -> dict[str, CallOutcome]:
        """Load `request` on `pods`; `replacing`: the pods being updated, and the artifact each served before."""
        updates = replacing or {}
        results = await asyncio.gather(*(self._load(pod, request, updates.get(pod.name)) for pod in pods))
        return dict(zip((pod.name for pod in pods), results, strict=True))

    async def _load(self, pod: ObservedPod, request: LoadRequest, replacing: str | None) -> CallOutcome:
        began = time.perf_counter()
        error = await self._load_and_verify(pod, request, replacing)
        elapsed_ms = (time.perf_counter() - began) * 1000
        if error is None:
            return CallOutcome(duration_ms=elapsed_ms)
        return CallOutcome(error=self._credentials.scrub(str(error)), retriable=error.retriable, duration_ms=elapsed_ms)

    async def _load_and_verify(
        self, pod: ObservedPod, request: LoadRequest, replacing: str | None
    ) -> EngineError | None:
        try:
            client = self.client(pod)
            if replacing is not None:
                await client.load(request, replace=True)
            else:
                try:
                    await client.load(request)
                except outcomes.AlreadyLoadedWithOtherPath:
                    # Ours from an earlier artifact (a restart in between): unloaded first, then loaded.
                    await client.load(request, replace=True)
        except EngineError as error:
            return error
        try:
            verified = await client.verify(request.name, request.artifact_url)
        except EngineError as error:
            # The engine accepted the load; only the check failed, which says nothing against the adapter
            # (and the engine may hold it now): another attempt, like an engine that is not ready.
            return outcomes.EngineUnavailable(
                f"load: the engine accepted the load but could not list its adapters: {error}", status=error.status
            )
        if verified is not Verification.LOADED:
            return outcomes.EngineUnavailable(
                f"load: the engine accepted the load but its /v1/models says {verified.value}"
            )
        if replacing is not None and _same_engine_path(client, replacing, request.artifact_url):
            return await self._forget_old_prefixes(pod, client, request.name)
        return None

    async def _forget_old_prefixes(self, pod: ObservedPod, client: EngineClient, name: str) -> EngineError | None:
        try:
            engine = self.client(pod, sidecar=False)
            if isinstance(engine, VllmClient):
                await engine.reset_prefix_cache()
        except EngineError as error:
            if not error.retriable:
                # It would answer from the old version's blocks: better not served at all.
                with contextlib.suppress(EngineError):
                    await client.unload(name)
            return error
        return None

    async def unloads(self, pods: Sequence[ObservedPod], *, name: str) -> dict[str, CallOutcome]:
        async def unload_one(pod: ObservedPod) -> CallOutcome:
            try:
                await self.client(pod).unload(name)
            except EngineError as error:
                return CallOutcome(error=self._credentials.scrub(str(error)), retriable=error.retriable)
            return CallOutcome()

        results = await asyncio.gather(*(unload_one(pod) for pod in pods))
        return dict(zip((pod.name for pod in pods), results, strict=True))


def _same_engine_path(client: EngineClient, old: str, new: str) -> bool:
    """Whether the engine serves the new version from the path the old one came from."""
    if client.target.kind is EngineKind.RUNTIME:
        return True  # the runtime downloads every version of an adapter into one folder
    try:
        return same_path(lora_path_for_engine(old), lora_path_for_engine(new))
    except EngineError:
        return True  # an old artifact we cannot place any more: assume the worst
