"""The adapter's HTTPRoute (`gateway.networking.k8s.io/v1`), for a cluster's gateway: published only when asked.

It is shaped like the one AIBrix's model router makes for a model (`pkg/controller/modelrouter`): rules matching
the header `model: <adapter>` exactly on the path prefixes `/v1/completions`, `/v1/chat/completions` and
`/v1/responses`, to the adapter's Service on its port (`model.aibrix.ai/port`, 8000 by default), with AIBrix's
default request timeout of 120 s. Two things differ, because the adapter owns it (so deleting the adapter
collects it): it lives in the adapter's namespace, named `<adapter>-router`, and its parentRef names the Gateway
across namespaces (AIBrix puts the route in the gateway's namespace and grants it the Service with a
ReferenceGrant). The Gateway's listener must then allow routes from the adapter's namespace
(`allowedRoutes.namespaces.from: All` or `Selector`).

`ensure_http_route` writes only what differs from what the operator owns (the labels it sets and the spec),
fingerprinted as for the Service, so an edit by someone else is undone and reported like one of the Service's.
"""

from __future__ import annotations

from typing import Final

from modeladapter.operator.api.view import AdapterObject
from modeladapter.operator.kube.client import HTTPROUTES, KubeApi, NotFound, Raw
from modeladapter.operator.kube.services import (
    ADAPTER_LABEL,
    WRITTEN_ANNOTATION,
    Restoration,
    adoption,
    fingerprint,
    owned_part,
)

MODEL_PATHS: Final = ("/v1/completions", "/v1/chat/completions", "/v1/responses")
MODEL_HEADER: Final = "model"
REQUEST_TIMEOUT: Final = "120s"
"""AIBrix's `AIBRIX_GATEWAY_TIMEOUT_SECONDS` default."""
ROUTE_SUFFIX: Final = "-router"


def route_name(adapter: str) -> str:
    """`<adapter>-router`, as AIBrix names a model's route (cut to the 253 characters a name may have)."""
    return adapter[: 253 - len(ROUTE_SUFFIX)] + ROUTE_SUFFIX


def desired_http_route(adapter: AdapterObject, *, port: int, parent: tuple[str | None, str]) -> Raw:
    ref = adapter.ref
    parent_namespace, parent_name = parent
    parent_ref: Raw = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": parent_name}
    if parent_namespace is not None:
        parent_ref["namespace"] = parent_namespace
    header = {"type": "Exact", "name": MODEL_HEADER, "value": ref.name}
    return {
        "apiVersion": HTTPROUTES.api_version,
        "kind": HTTPROUTES.kind,
        "metadata": {
            "name": route_name(ref.name),
            "namespace": ref.namespace,
            "labels": {ADAPTER_LABEL: ref.name},
            "ownerReferences": [ref.owner_reference()],
        },
        "spec": {
            "parentRefs": [parent_ref],
            "rules": [
                {
                    "matches": [
                        {"path": {"type": "PathPrefix", "value": path}, "headers": [header]} for path in MODEL_PATHS
                    ],
                    "backendRefs": [{"group": "", "kind": "Service", "name": ref.name, "port": port, "weight": 1}],
                    "timeouts": {"request": REQUEST_TIMEOUT},
                }
            ],
        },
    }


async def ensure_http_route(
    kube: KubeApi, adapter: AdapterObject, *, port: int, parent: tuple[str | None, str], published: bool
) -> list[Restoration]:
    """Create or correct the adapter's HTTPRoute; `KubeError` if the API refuses (no Gateway API CRDs, say),
    `NotOurs` if a route of that name belongs to something else. `published`: this operator wrote or saw the
    route before, so a missing one was deleted by someone else."""
    desired = desired_http_route(adapter, port=port, parent=parent)
    wanted = owned_part("HTTPRoute", desired)
    desired["metadata"]["annotations"] = {WRITTEN_ANNOTATION: fingerprint(wanted)}
    namespace, name = adapter.ref.namespace, desired["metadata"]["name"]
    try:
        current = await kube.get(HTTPROUTES, namespace, name)
    except NotFound:
        if adapter.deleting:
            return []
        await kube.create(HTTPROUTES, namespace, desired)
        return [Restoration("HTTPRoute", "deleted")] if published else []
    patch = adoption(current, adapter.ref.owner_reference(), "HTTPRoute", namespace, name)
    have = owned_part("HTTPRoute", current)
    restored = []
    if have != wanted:
        written = ((current.get("metadata") or {}).get("annotations") or {}).get(WRITTEN_ANNOTATION)
        if written is not None and written != fingerprint(have):
            restored.append(Restoration("HTTPRoute", "edited"))
        patch.update({"metadata": {"labels": wanted["labels"], "annotations": desired["metadata"]["annotations"]}})
        patch["spec"] = desired["spec"]
    if patch:
        await kube.patch(HTTPROUTES, namespace, name, patch)
    return restored
