"""Which models the gateway routes, and where: read from the objects a cluster's gateway reads. Pure.

* an **adapter** is a Service owned by a ModelAdapter (the operator names it like the adapter); its endpoints are
  the addresses of the EndpointSlices labelled `kubernetes.io/service-name=<name>` whose `ready` condition is not
  False (Kubernetes: a missing `ready` means ready), on the slice's port `http` (or its only port);
* a **base model** is the label `model.aibrix.ai/name` of Ready pods that are not terminating, on the port of
  their label `model.aibrix.ai/port` (8000 when absent). A cluster's gateway reads the base model's Service
  instead; the sandbox has none, and pods are what that Service would select.

The same model name in two namespaces routes to the oldest Service (then the first namespace by name), as the
Gateway API settles conflicting routes; an adapter named like a base model wins over the base model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from modeladapter.sandbox.gateway.envoy_config import Backend

SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
MODEL_LABEL: Final = "model.aibrix.ai/name"
PORT_LABEL: Final = "model.aibrix.ai/port"
DEFAULT_ENGINE_PORT: Final = 8000

Raw = Mapping[str, Any]


def backends(services: Iterable[Raw], endpoint_slices: Iterable[Raw], pods: Iterable[Raw]) -> list[Backend]:
    """Every routable model with its ready endpoints, sorted by name."""
    adapters: dict[str, Backend] = {}
    slices = list(endpoint_slices)
    for service in sorted((s for s in services if _owned_by_an_adapter(s)), key=_age):
        name = str(service["metadata"]["name"])
        if name not in adapters:
            adapters[name] = Backend(name, _slice_endpoints(service, slices), kind="adapter")
    base: dict[str, set[tuple[str, int]]] = {}
    for pod in pods:
        model = ((pod.get("metadata") or {}).get("labels") or {}).get(MODEL_LABEL)
        address = _ready_address(pod)
        if model and model not in adapters:
            endpoints = base.setdefault(str(model), set())
            if address is not None:
                endpoints.add(address)
    routed = list(adapters.values()) + [Backend(m, tuple(sorted(e)), kind="base") for m, e in base.items()]
    return sorted(routed, key=lambda b: b.model)


def _owned_by_an_adapter(service: Raw) -> bool:
    owners = (service.get("metadata") or {}).get("ownerReferences") or []
    return any(o.get("kind") == "ModelAdapter" and o.get("controller") for o in owners)


def _age(obj: Raw) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("creationTimestamp") or ""), str(metadata.get("namespace") or "")


def _slice_endpoints(service: Raw, slices: list[Raw]) -> tuple[tuple[str, int], ...]:
    namespace = service["metadata"].get("namespace")
    name = service["metadata"]["name"]
    found: set[tuple[str, int]] = set()
    for endpoint_slice in slices:
        metadata = endpoint_slice.get("metadata") or {}
        if metadata.get("namespace") != namespace or (metadata.get("labels") or {}).get(SERVICE_NAME_LABEL) != name:
            continue
        port = _slice_port(endpoint_slice)
        if port is None:
            continue
        for endpoint in endpoint_slice.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            found.update((str(address), port) for address in endpoint.get("addresses") or [])
    return tuple(sorted(found))


def _slice_port(endpoint_slice: Raw) -> int | None:
    ports = [p for p in endpoint_slice.get("ports") or [] if p.get("port")]
    named = [p for p in ports if p.get("name") == "http"]
    chosen = named or (ports if len(ports) == 1 else [])
    return int(chosen[0]["port"]) if chosen else None


def _ready_address(pod: Raw) -> tuple[str, int] | None:
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    if not ready or metadata.get("deletionTimestamp") or not status.get("podIP"):
        return None
    label = (metadata.get("labels") or {}).get(PORT_LABEL)
    port = int(label) if label and str(label).isdigit() else DEFAULT_ENGINE_PORT
    return str(status["podIP"]), port
