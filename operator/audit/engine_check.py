"""`verify --engines`: what the engines serve, against what the log says they should serve.

The log says on which pods each adapter was ever placed. Every such pod that still exists is asked for its
`/v1/models`, once per pod and API key (the key from the Secret the log recorded, read again):

* a live adapter that the log says is loaded on a pod whose engine does not list it: drift `engine[POD]`;
* a deleted adapter (its stream finalized, or its object gone) that an engine still lists, while no live
  adapter of that name holds the pod: drift `engine[POD]` — an unload that was abandoned at its deadline, or
  an engine that took the adapter back from someone else;
* an engine that cannot be asked (its pod IP unreachable from where verify runs, a key refused): drift
  `engine[POD]` saying what went wrong. Pod IPs are usually reachable only inside the cluster: run it there,
  e.g. `kubectl exec deploy/modeladapter-operator -- modeladapter verify --engines`.

It only reads: `GET /v1/models`, and `get` of the Secrets the log names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modeladapter.adapters.connections import EngineConnections
from modeladapter.adapters.outcomes import EngineError, EngineModels
from modeladapter.adapters.selection import select_engine
from modeladapter.fsm.events import PodSelected, RecordedEvent
from modeladapter.fsm.phases import PlacementState
from modeladapter.fsm.state import AdapterState
from modeladapter.operator.audit.drifts import Drift
from modeladapter.operator.kube.client import PODS, KubeApi, KubeError
from modeladapter.operator.kube.secret_values import NoRecordedKey, recorded_api_key
from modeladapter.store import StreamInfo

LIST_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Adapter:
    """One adapter of the log as the engines are checked for it."""

    stream: StreamInfo
    state: AdapterState
    pods: frozenset[str]
    """Every pod the log ever placed it on."""
    live: bool
    """Its stream is not finalized and its object is in the cluster."""
    labels: Mapping[str, str]
    """The ModelAdapter's labels (its engine port), empty for a deleted one."""


async def check_engines(
    kube: KubeApi,
    streams: Sequence[StreamInfo],
    states: Mapping[str, AdapterState],
    events: Mapping[str, Sequence[RecordedEvent]],
    in_cluster: Mapping[str, Mapping[str, Any]],
) -> list[Drift]:
    """The drifts between the engines and the log, for every adapter of `streams` (see the module's doc)."""
    adapters = [
        Adapter(
            stream=stream,
            state=states[stream.stream_id],
            pods=frozenset(
                e.payload.pod for e in events.get(stream.stream_id, ()) if isinstance(e.payload, PodSelected)
            ),
            live=stream.finalized_at is None and stream.stream_id in in_cluster,
            labels=((in_cluster.get(stream.stream_id) or {}).get("metadata") or {}).get("labels") or {},
        )
        for stream in streams
        if stream.stream_id in states
    ]
    namespaces = sorted({a.stream.namespace for a in adapters})
    pods = {(ns, str(p["metadata"]["name"])): p for ns in namespaces for p in await _pods(kube, ns)}
    held = {
        (a.stream.namespace, a.stream.name, placement.pod)
        for a in adapters
        if a.live
        for placement in a.state.placements
    }
    async with EngineConnections(total_timeout=LIST_TIMEOUT, connect_timeout=LIST_TIMEOUT) as connections:
        listings = _Listings(kube, connections)
        checks = [
            _check(adapter, pod, pods[(adapter.stream.namespace, pod)], listings)
            for adapter in adapters
            for pod in sorted(adapter.pods)
            if (adapter.stream.namespace, pod) in pods
            and (adapter.live or (adapter.stream.namespace, adapter.stream.name, pod) not in held)
        ]
        found = await asyncio.gather(*checks)
    return [drift for drift in found if drift is not None]


async def _pods(kube: KubeApi, namespace: str) -> list[dict[str, Any]]:
    try:
        items, _ = await kube.list(PODS, namespace)
    except KubeError:
        return []  # no pods we may see: nothing to ask
    return list(items)


async def _check(adapter: Adapter, pod: str, raw_pod: Mapping[str, Any], listings: _Listings) -> Drift | None:
    stream, state = adapter.stream, adapter.state
    placement = state.placement(pod)
    expected_loaded = adapter.live and placement is not None and placement.state is PlacementState.LOADED
    if adapter.live and not expected_loaded:
        return None  # the operator is loading, retrying or unloading there: the engine may show either
    models = await listings.models(raw_pod, adapter)
    expected = "loaded" if expected_loaded else "deleted: unloaded from every pod"

    def drift(engine: str, note: str) -> Drift:
        return Drift(stream.namespace, stream.name, stream.stream_id, f"engine[{pod}]", expected, engine, note)

    if isinstance(models, str):
        return drift(f"not asked: {models}", "verify --engines must run where pod IPs are reachable")
    served = models.find(stream.name)
    serves = served is not None and served.is_adapter
    if expected_loaded and not serves:
        return drift("not listed", "the engine lost the adapter; the operator reloads it at its next verification")
    if not expected_loaded and serves:
        return drift("still served", "an engine serves a deleted adapter (an unload abandoned at its deadline?)")
    return None


class _Listings:
    """Each pod's `/v1/models`, asked once per pod and key."""

    def __init__(self, kube: KubeApi, connections: EngineConnections) -> None:
        self.kube = kube
        self.connections = connections
        self._asked: dict[tuple[str, str, str | None], asyncio.Task[EngineModels | str]] = {}

    async def models(self, pod: Mapping[str, Any], adapter: Adapter) -> EngineModels | str:
        """The listing, or why it could not be had (one line, the key masked)."""
        key = await self._key(adapter)
        metadata, status = pod.get("metadata") or {}, pod.get("status") or {}
        asked = (str(metadata.get("namespace")), str(metadata.get("name")), key)
        if asked not in self._asked:
            self._asked[asked] = asyncio.ensure_future(self._list(pod, adapter, key, str(status.get("podIP") or "")))
        return await self._asked[asked]

    async def _list(self, pod: Mapping[str, Any], adapter: Adapter, key: str | None, ip: str) -> EngineModels | str:
        spec = pod.get("spec") or {}
        try:
            target = select_engine(
                pod_ip=ip,
                pod_labels=(pod.get("metadata") or {}).get("labels") or {},
                container_names=[str(c.get("name")) for c in spec.get("containers") or []],
                adapter_labels=adapter.labels,
            )
            return await self.connections.client(target, api_key=key).list_models()
        except EngineError as error:
            return str(error)

    async def _key(self, adapter: Adapter) -> str | None:
        try:
            return await recorded_api_key(self.kube, adapter.stream.namespace, adapter.state.spec)
        except (NoRecordedKey, KubeError):
            return None  # asked without a key: a keyed engine's refusal says so in the drift
