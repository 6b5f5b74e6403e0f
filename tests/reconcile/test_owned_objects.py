"""The Service and EndpointSlice the operator owns: a change of the adapter's own (more instances, another
port, a base model) rewrites them silently; someone else's deletion or edit is undone and recorded."""

from __future__ import annotations

import copy
from typing import cast

from modeladapter.adapters.outcomes import EngineRejected
from modeladapter.fsm.events import OwnedObjectRestored
from modeladapter.operator.controller.cache import ClusterCache
from modeladapter.operator.controller.routing import EventRouter
from modeladapter.operator.kube.client import ENDPOINTSLICES, SERVICES, KubeApi
from modeladapter.operator.kube.services import WRITTEN_ANNOTATION
from modeladapter.operator.reconcile.echoes import StatusEchoes
from modeladapter.operator.reconcile.index import PlacementIndex
from modeladapter.sandbox.apiserver.store import DeleteOptions
from tests.e2e.conftest import adapter_manifest as manifest
from tests.reconcile.conftest import World


async def restorations(world: World) -> list[tuple[str, str]]:
    return [(e.kind, e.change) for e in await world.events() if isinstance(e, OwnedObjectRestored)]


async def test_the_adapters_own_changes_rewrite_the_objects_without_a_word(world: World) -> None:
    for pod in ("pod-0", "pod-1"):
        world.add_pod(pod)
    world.apply(manifest(replicas=1))
    await world.settle()
    world.apply(manifest(replicas=2, baseModel="qwen-coder"))
    await world.settle()
    body = manifest(replicas=2, baseModel="qwen-coder")
    body["metadata"]["labels"]["model.aibrix.ai/port"] = "8001"
    world.apply(body)
    await world.settle()
    service = world.cluster.get(SERVICES, "default", "qwen-code-lora")
    slice_ = world.cluster.get(ENDPOINTSLICES, "default", "qwen-code-lora")
    assert service is not None and slice_ is not None
    assert service["spec"]["ports"][0]["port"] == 8001 and len(slice_["endpoints"]) == 2
    assert service["metadata"]["labels"]["model.aibrix.ai/name"] == "qwen-coder"
    assert WRITTEN_ANNOTATION in service["metadata"]["annotations"]
    assert await restorations(world) == []
    assert not [e for e in world.k8s_events() if e["reason"] == "OwnedObjectRestored"]


async def test_an_endpoint_slice_emptied_by_someone_else_is_refilled_and_said_so(world: World) -> None:
    world.add_pod("pod-0")
    world.apply(manifest(replicas=1))
    await world.settle()
    resource = world.cluster.store.resource_type("discovery.k8s.io", "v1", "endpointslices")
    world.cluster.store.patch(resource, "default", "qwen-code-lora", "application/merge-patch+json", {"endpoints": []})
    await world.reconcile()
    slice_ = world.cluster.get(ENDPOINTSLICES, "default", "qwen-code-lora")
    assert slice_ is not None and len(slice_["endpoints"]) == 1
    assert await restorations(world) == [("EndpointSlice", "edited")]
    warning = next(e for e in world.k8s_events() if e["reason"] == "OwnedObjectRestored")
    assert warning["type"] == "Warning" and warning["message"].startswith(
        "EndpointSlice default/qwen-code-lora was edited by someone else"
    )


async def test_objects_removed_while_the_adapter_is_deleted_are_left_removed_and_not_reported(world: World) -> None:
    """A foreground deletion: the garbage collector deletes the Service and EndpointSlice before the adapter."""
    engine = world.add_pod("pod-0")
    world.apply(manifest(replicas=1))
    await world.settle()
    uid = world.uid()
    engine.fail("unload", EngineRejected("unload: the engine answered 500", status=500), times=3)
    world.delete("qwen-code-lora")
    for kind, plural in (("", "services"), ("discovery.k8s.io", "endpointslices")):
        resource = world.cluster.store.resource_type(kind, "v1", plural)
        world.cluster.store.delete(resource, "default", "qwen-code-lora", DeleteOptions(grace_period_seconds=0))
    await world.reconcile(uid=uid)
    assert world.cluster.get(SERVICES, "default", "qwen-code-lora") is None
    assert world.cluster.get(ENDPOINTSLICES, "default", "qwen-code-lora") is None
    assert await restorations(world) == []


async def test_only_a_change_someone_else_made_to_an_owned_object_wakes_its_adapter(world: World) -> None:
    world.add_pod("pod-0")
    world.apply(manifest(replicas=1))
    await world.settle()
    woken: list[str] = []
    cache = ClusterCache(cast(KubeApi, None))
    router = EventRouter(cache, woken.append, index=PlacementIndex(), echoes=StatusEchoes())
    cache.listen(router)
    cache._adapter_changed(None, world.adapter())
    woken.clear()
    for kind, resource in (("Service", SERVICES), ("EndpointSlice", ENDPOINTSLICES)):
        written = world.cluster.get(resource, "default", "qwen-code-lora")
        assert written is not None
        router.owned_changed(kind, None, written)
        relabelled = copy.deepcopy(written)
        relabelled["metadata"]["labels"]["team"] = "platform"  # not a label the operator owns
        router.owned_changed(kind, written, relabelled)
        assert woken == [], f"the operator's own {kind}, or a change it does not own, wakes nobody"
        edited = copy.deepcopy(written)
        edited["metadata"]["labels"] = {}
        router.owned_changed(kind, written, edited)
        router.owned_changed(kind, written, None)
        unmarked = copy.deepcopy(written)
        del unmarked["metadata"]["annotations"]
        router.owned_changed(kind, None, unmarked)
        assert woken == [world.uid()] * 3, f"{kind}: edited, deleted, and written by an older version"
        woken.clear()
