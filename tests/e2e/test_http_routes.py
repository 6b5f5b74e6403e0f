"""With `--http-route-parent`, each adapter gets the HTTPRoute a cluster's gateway reads, shaped like the one
AIBrix's model router makes for a model, owned by the adapter and kept as the operator wrote it; without the
flag there is none, and a cluster without the Gateway API never holds an adapter back."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from modeladapter.fsm.events import OwnedObjectRestored
from modeladapter.operator.kube.client import HTTPROUTES, NotFound, Raw
from modeladapter.sandbox.apiserver.gateway_api import http_route_crd
from tests.e2e.conftest import FAST, Sandbox, adapter_manifest

AIBRIX_GATEWAY = ("aibrix-system", "aibrix-eg")
ROUTE = "qwen-code-lora-router"
PUBLISHING = replace(FAST, http_route_parent=AIBRIX_GATEWAY, verify_interval=timedelta(minutes=10))


async def route(sandbox: Sandbox) -> Raw | None:
    try:
        return await sandbox.kube.get(HTTPROUTES, "default", ROUTE)
    except NotFound:
        return None


async def test_a_running_adapter_has_an_http_route_like_aibrixs_model_router_makes(sandbox: Sandbox) -> None:
    sandbox.server.seed(http_route_crd())
    await sandbox.add_pods(1)
    await sandbox.start_operator(PUBLISHING)
    manifest = adapter_manifest()
    manifest["metadata"]["labels"] = {"model.aibrix.ai/port": "8000"}
    adapter = await sandbox.apply(manifest)
    await sandbox.phase("Running")

    published = await sandbox.eventually(lambda: route(sandbox), what="the HTTPRoute")
    (owner,) = published["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("ModelAdapter", adapter["metadata"]["uid"], True)
    spec = published["spec"]
    assert spec["parentRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "aibrix-system", "name": "aibrix-eg"}
    ]
    (rule,) = spec["rules"]
    assert [m["path"] for m in rule["matches"]] == [
        {"type": "PathPrefix", "value": path} for path in ("/v1/completions", "/v1/chat/completions", "/v1/responses")
    ]
    assert all(m["headers"] == [{"type": "Exact", "name": "model", "value": "qwen-code-lora"}] for m in rule["matches"])
    assert rule["backendRefs"] == [
        {"group": "", "kind": "Service", "name": "qwen-code-lora", "port": 8000, "weight": 1}
    ]
    assert rule["timeouts"] == {"request": "120s"}


async def test_a_route_deleted_or_edited_by_someone_else_is_put_back_and_recorded(sandbox: Sandbox) -> None:
    sandbox.server.seed(http_route_crd())
    await sandbox.add_pods(1)
    running = await sandbox.start_operator(PUBLISHING)
    await sandbox.apply(adapter_manifest())
    await sandbox.phase("Running")
    original = await sandbox.eventually(lambda: route(sandbox), what="the HTTPRoute")

    async def as_published() -> bool:
        current = await route(sandbox)
        return current is not None and current["spec"] == original["spec"]

    await sandbox.kube.delete(HTTPROUTES, "default", ROUTE)
    await sandbox.eventually(as_published, timeout=5, what="the deleted route back")
    await sandbox.kube.patch(HTTPROUTES, "default", ROUTE, {"spec": {"rules": []}})
    await sandbox.eventually(as_published, timeout=5, what="the edited route put back")

    logged = [e.payload for e in await running.store.read_all(limit=10_000)]
    restored = [(e.kind, e.change) for e in logged if isinstance(e, OwnedObjectRestored)]
    assert restored == [("HTTPRoute", "deleted"), ("HTTPRoute", "edited")]


async def test_deleting_the_adapter_collects_its_route(sandbox: Sandbox) -> None:
    sandbox.server.seed(http_route_crd())
    await sandbox.add_pods(1)
    await sandbox.start_operator(PUBLISHING)
    await sandbox.apply(adapter_manifest())
    await sandbox.eventually(lambda: route(sandbox), what="the HTTPRoute")
    await sandbox.delete()
    await sandbox.eventually(sandbox.gone, what="the adapter gone")

    async def collected() -> bool:
        return await route(sandbox) is None

    await sandbox.eventually(collected, what="the route collected with its owner")


async def test_without_the_flag_no_route_is_published(sandbox: Sandbox) -> None:
    sandbox.server.seed(http_route_crd())
    await sandbox.add_pods(1)
    await sandbox.start_operator(replace(FAST, verify_interval=timedelta(minutes=10)))
    await sandbox.apply(adapter_manifest())
    await sandbox.phase("Running")
    assert sandbox.server.objects("gateway.networking.k8s.io/v1", "HTTPRoute") == []


async def test_a_cluster_without_the_gateway_api_still_runs_the_adapter_and_says_why_there_is_no_route(
    sandbox: Sandbox,
) -> None:
    await sandbox.add_pods(1)
    await sandbox.start_operator(PUBLISHING)
    await sandbox.apply(adapter_manifest())
    await sandbox.phase("Running")

    async def warned() -> list[Raw]:
        return [e for e in await sandbox.events() if e["reason"] == "HTTPRouteNotPublished"]

    (warning, *_) = await sandbox.eventually(warned, what="the Warning Event")
    assert warning["type"] == "Warning" and "HTTPRoute not published" in warning["message"]
