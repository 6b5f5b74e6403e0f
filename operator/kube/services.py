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

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from modeladapter.operator.api.view import AdapterObject, AdapterRef
from modeladapter.operator.kube.client import (
    ENDPOINTSLICES,
    MODELADAPTERS,
    SERVICES,
    KubeApi,
    KubeError,
    NotFound,
    Raw,
    Resource,
)

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
    """A Service or EndpointSlice of the adapter's name exists and belongs to something else: the message says
    what it belongs to, since only a person can settle it and needs to know who else is involved."""

    def __init__(self, kind: str, namespace: str, name: str, owners: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(409, "NotOwned", f"{kind} {namespace}/{name} exists and {_ownership(owners, namespace)}")


def _ownership(owners: Sequence[Mapping[str, Any]], namespace: str) -> str:
    """`has no owner`, or `is owned by Deployment ns/web and ModelAdapter ns/other (uid ...)`."""
    if not owners:
        return "has no owner"
    named = []
    for owner in owners:
        kind, name, uid = (_printable(owner.get(field)) for field in ("kind", "name", "uid"))
        # An owner reference has no namespace of its own: a namespaced owner is in its dependent's namespace.
        described = f"{kind} {namespace}/{name}"
        if kind == MODELADAPTERS.kind:
            described += f" (uid {uid})"  # which one: adapters of one name may have come and gone
        named.append(described)
    return "is owned by " + " and ".join(named)


def _printable(value: object) -> str:
    """Whoever wrote the object wrote its owner references: nothing in them reaches a message unescaped."""
    text = str(value or "?")
    return text if text.isprintable() else repr(text)


OwnedKind = Literal["Service", "EndpointSlice", "HTTPRoute"]


@dataclass(frozen=True, slots=True)
class Restoration:
    """An object of the adapter's that someone else had deleted or edited, and that was put back."""

    kind: OwnedKind
    change: Literal["deleted", "edited"]


async def ensure_service(
    kube: KubeApi, adapter: AdapterObject, endpoints: Sequence[Endpoint], *, port: int, published: bool = False
) -> list[Restoration]:
    """Create or correct the Service and the EndpointSlice. Raises `KubeError` if the API refuses, and
    `NotOurs` if an object of that name belongs to something else (it is never taken over).

    `published`: the log says they were written before, so one that is missing was deleted by someone else.
    What the operator owns in each (ports, its labels, the endpoints) is fingerprinted in an annotation at each
    write: owned fields that no longer match it were edited by someone else, and that edit is undone. Both are
    returned, to be recorded; a change of the adapter's own (new instances, another port) is not. While the
    adapter is being deleted, a missing object is left missing: the garbage collector removes them first in a
    foreground deletion, and that is no one's mistake."""
    namespace, name = adapter.ref.namespace, adapter.ref.name
    owner = adapter.ref.owner_reference()
    restored: list[Restoration] = []
    owned: list[tuple[OwnedKind, Resource, Raw]] = [
        ("Service", SERVICES, desired_service(adapter, port=port)),
        ("EndpointSlice", ENDPOINTSLICES, desired_endpoint_slice(adapter.ref, endpoints, port=port)),
    ]
    for kind, resource, desired in owned:
        wanted = owned_part(kind, desired)
        desired["metadata"]["annotations"] = {WRITTEN_ANNOTATION: fingerprint(wanted)}
        try:
            current = await kube.get(resource, namespace, name)
        except NotFound:
            if adapter.deleting:
                continue
            await kube.create(resource, namespace, desired)
            if published:
                restored.append(Restoration(kind, "deleted"))
            continue
        patch = adoption(current, owner, kind, namespace, name)
        have = owned_part(kind, current)
        if have != wanted:
            written = ((current.get("metadata") or {}).get("annotations") or {}).get(WRITTEN_ANNOTATION)
            if written is not None and written != fingerprint(have):
                restored.append(Restoration(kind, "edited"))
            patch.update(_owned_patch(desired))
            patch.setdefault("metadata", {})["annotations"] = desired["metadata"]["annotations"]
        if patch:
            await kube.patch(resource, namespace, name, patch)
    return restored


WRITTEN_ANNOTATION: Final = "adapter.model.aibrix.ai/written"
"""A fingerprint of the fields the operator owns, as it last wrote them."""
_OWNED_LABELS: Final = {
    "Service": (ADAPTER_LABEL, MODEL_LABEL),
    "EndpointSlice": (SERVICE_NAME_LABEL, MANAGED_BY_LABEL),
}


def as_written(kind: OwnedKind, obj: Mapping[str, Any]) -> bool:
    """The object holds exactly what the operator last wrote in the fields it owns (its own write coming back
    through a watch, or someone's change to fields it does not own): nothing for the operator to do."""
    written = ((obj.get("metadata") or {}).get("annotations") or {}).get(WRITTEN_ANNOTATION)
    return written is not None and written == fingerprint(owned_part(kind, obj))


def owned_part(kind: OwnedKind, obj: Mapping[str, Any]) -> dict[str, Any]:
    """What the operator owns in a Service or EndpointSlice: its labels (absent ones as None), the ports and,
    in an EndpointSlice, the addresses; in an HTTPRoute, its label and the whole spec."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if kind == "HTTPRoute":
        return {"labels": {ADAPTER_LABEL: labels.get(ADAPTER_LABEL)}, "spec": obj.get("spec")}
    if kind == "Service":
        return {
            "labels": {key: labels.get(key) for key in _OWNED_LABELS["Service"]},
            "ports": (obj.get("spec") or {}).get("ports"),
        }
    return {
        "labels": {key: labels.get(key) for key in _OWNED_LABELS["EndpointSlice"]},
        "ports": obj.get("ports"),
        "addresses": _addresses(obj),
    }


def _owned_patch(desired: Raw) -> Raw:
    """A merge patch that writes the owned fields of `desired` (a label it lacks is removed)."""
    kind = desired["kind"]
    labels = {key: desired["metadata"]["labels"].get(key) for key in _OWNED_LABELS[kind]}
    if kind == "Service":
        return {"metadata": {"labels": labels}, "spec": {"ports": desired["spec"]["ports"]}}
    return {"metadata": {"labels": labels}, "endpoints": desired["endpoints"], "ports": desired["ports"]}


def fingerprint(owned: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(owned, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def adoption(current: Mapping[str, Any], owner: Raw, kind: str, namespace: str, name: str) -> Raw:
    """A patch that moves the object to this adapter, if an earlier ModelAdapter of the name owned it."""
    owners = (current.get("metadata") or {}).get("ownerReferences") or []
    if any(o.get("uid") == owner["uid"] for o in owners):
        return {}
    if owners and all(o.get("kind") == MODELADAPTERS.kind and o.get("name") == owner["name"] for o in owners):
        return {"metadata": {"ownerReferences": [owner]}}  # a re-created adapter takes over its predecessor's
    raise NotOurs(kind, namespace, name, owners)


def _addresses(endpoint_slice: Mapping[str, Any]) -> list[tuple[str, ...]]:
    return sorted(tuple(e.get("addresses") or []) for e in endpoint_slice.get("endpoints") or [])
