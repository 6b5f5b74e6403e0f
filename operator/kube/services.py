"""Service discovery: a headless Service and an EndpointSlice named like the adapter, listing its instances.

The gateway routes a request whose model is the adapter's name to the Service of that name (AIBrix's
design): no selector, port `http` (the engine port, 8000 unless the adapter's `model.aibrix.ai/port` label
says otherwise), and an IPv4 EndpointSlice (`discovery.k8s.io/v1`) labelled `kubernetes.io/service-name`
with exactly the pods whose engine serves the adapter. Both carry a controller owner reference to the
ModelAdapter, so deleting it garbage-collects them. `desired_service` and `desired_endpoint_slice` are pure;
`ensure_service` writes only what differs, and never takes over an object of that name that belongs to
something else (a user's own Service): it reports it instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from modeladapter.operator.api.view import AdapterObject, AdapterRef
from modeladapter.operator.kube.client import ENDPOINTSLICES, MODELADAPTERS, SERVICES, KubeApi, KubeError, NotFound, Raw

ADAPTER_LABEL: Final = "adapter.model.aibrix.ai/name"
MODEL_LABEL: Final = "model.aibrix.ai/name"
SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
MANAGED_BY_LABEL: Final = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY: Final = "modeladapter.model.aibrix.ai"
# What Kubernetes accepts as a label value (at most 63 characters); `spec.baseModel` is free text.
LABEL_VALUE: Final = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


@dataclass(frozen=True, slots=True)
class Endpoint:
    pod: str
    ip: str
    uid: str


def desired_service(adapter: AdapterObject, *, port: int) -> Raw:
    ref = adapter.ref
    labels = {ADAPTER_LABEL: ref.name}
    base_model = adapter.base_model_label
    if base_model and len(base_model) <= 63 and LABEL_VALUE.fullmatch(base_model):
        # A base model that cannot be a label value (`org/model`, too long) would make the API refuse the
        # whole Service and leave the adapter Bound for ever: it is informational, so it is left out.
        labels[MODEL_LABEL] = base_model
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": ref.name,
            "namespace": ref.namespace,
            "labels": labels,
            "ownerReferences": [ref.owner_reference()],
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }


def desired_endpoint_slice(ref: AdapterRef, endpoints: Sequence[Endpoint], *, port: int) -> Raw:
    return {
        "apiVersion": ENDPOINTSLICES.api_version,
        "kind": "EndpointSlice",
        "metadata": {
            "name": ref.name,
            "namespace": ref.namespace,
            "labels": {SERVICE_NAME_LABEL: ref.name, MANAGED_BY_LABEL: MANAGED_BY},
            "ownerReferences": [ref.owner_reference()],
        },
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [e.ip],
                "conditions": {"ready": True},
                "targetRef": {"kind": "Pod", "namespace": ref.namespace, "name": e.pod, "uid": e.uid},
            }
            for e in sorted(endpoints, key=lambda e: (e.ip, e.pod))
        ],
        "ports": [{"name": "http", "protocol": "TCP", "port": port}],
    }


class NotOurs(KubeError):
    """A Service or EndpointSlice of the adapter's name exists and belongs to something else."""

    def __init__(self, kind: str, namespace: str, name: str) -> None:
        super().__init__(409, "NotOwned", f"{kind} {namespace}/{name} exists and is not owned by a ModelAdapter")


async def ensure_service(kube: KubeApi, adapter: AdapterObject, endpoints: Sequence[Endpoint], *, port: int) -> None:
    """Create or correct the Service and the EndpointSlice. Raises `KubeError` if the API refuses, and
    `NotOurs` if an object of that name belongs to something else (it is never taken over)."""
    namespace, name = adapter.ref.namespace, adapter.ref.name
    owner = adapter.ref.owner_reference()
    service = desired_service(adapter, port=port)
    try:
        current = await kube.get(SERVICES, namespace, name)
    except NotFound:
        await kube.create(SERVICES, namespace, service)
    else:
        patch = _adoption(current, owner, "Service", namespace, name)
        if (current.get("spec") or {}).get("ports") != service["spec"]["ports"] or _labels_differ(current, service):
            patch["spec"] = {"ports": service["spec"]["ports"]}
            patch.setdefault("metadata", {})["labels"] = service["metadata"]["labels"]
        if patch:
            await kube.patch(SERVICES, namespace, name, patch)
    slice_ = desired_endpoint_slice(adapter.ref, endpoints, port=port)
    try:
        current = await kube.get(ENDPOINTSLICES, namespace, name)
    except NotFound:
        await kube.create(ENDPOINTSLICES, namespace, slice_)
        return
    patch = _adoption(current, owner, "EndpointSlice", namespace, name)
    if _addresses(current) != _addresses(slice_) or current.get("ports") != slice_["ports"]:
        patch.update({"endpoints": slice_["endpoints"], "ports": slice_["ports"]})
    if patch:
        await kube.patch(ENDPOINTSLICES, namespace, name, patch)


def _adoption(current: Mapping[str, Any], owner: Raw, kind: str, namespace: str, name: str) -> Raw:
    """A patch that moves the object to this adapter, if an earlier ModelAdapter of the name owned it."""
    owners = (current.get("metadata") or {}).get("ownerReferences") or []
    if any(o.get("uid") == owner["uid"] for o in owners):
        return {}
    if owners and all(o.get("kind") == MODELADAPTERS.kind and o.get("name") == owner["name"] for o in owners):
        return {"metadata": {"ownerReferences": [owner]}}  # a re-created adapter takes over its predecessor's
    raise NotOurs(kind, namespace, name)


def _addresses(endpoint_slice: Mapping[str, Any]) -> list[tuple[str, ...]]:
    return sorted(tuple(e.get("addresses") or []) for e in endpoint_slice.get("endpoints") or [])


def _labels_differ(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    have = (current.get("metadata") or {}).get("labels") or {}
    return any(have.get(k) != v for k, v in wanted["metadata"]["labels"].items())
