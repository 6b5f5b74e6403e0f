"""What a pass writes for users and gateways, and only when it differs: the status, the retry annotations, the
Service and the EndpointSlice. A status someone else wrote is put right; an object of the adapter's name that
belongs to something else is never taken over, and the adapter says so."""

from __future__ import annotations

from modeladapter.adapters.outcomes import EngineRejected, EngineUnavailable
from modeladapter.operator.kube.client import SERVICES
from tests.e2e.conftest import adapter_manifest as manifest
from tests.reconcile.conftest import World

REFUSED = EngineUnavailable("load: connection refused")


async def test_a_status_written_by_someone_else_is_put_right_by_the_next_pass(world: World) -> None:
    world.add_pod("pod-0")
    world.apply(manifest(replicas=1))
    await world.reconcile()
    resource = world.cluster.store.resource_type("model.aibrix.ai", "v1alpha1", "modeladapters")
    world.cluster.store.patch(
        resource, "default", "qwen-code-lora", "application/merge-patch+json",
        {"status": {"phase": "Failed", "instances": []}}, subresource="status",
    )  # fmt: skip
    assert world.reconciler.echoes.overwritten(world.uid(), world.status()), "the router would wake the adapter"
    result = await world.reconcile()
    assert result.appended == (), "nothing new happened to the adapter itself"
    assert (world.status()["phase"], world.status()["instances"]) == ("Running", ["pod-0"])
    assert not world.reconciler.echoes.overwritten(world.uid(), world.status()), "and its echo wakes nobody"


async def test_a_service_of_the_adapters_name_owned_by_something_else_is_never_taken_over(world: World) -> None:
    world.add_pod("pod-0")
    world.cluster.seed({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "qwen-code-lora", "namespace": "default"},
        "spec": {"ports": [{"port": 80}], "selector": {"app": "mine"}},
    })  # fmt: skip
    world.apply(manifest(replicas=1))
    await world.reconcile()
    service = world.cluster.get(SERVICES, "default", "qwen-code-lora")
    assert (
        service is not None
        and service["spec"]["selector"] == {"app": "mine"}
        and "ownerReferences" not in service["metadata"]
    )
    assert world.status()["phase"] == "Bound" and world.status()["instances"] == ["pod-0"]
    conflicts = [e for e in world.k8s_events() if e["reason"] == "ServiceConflict"]
    assert conflicts and "exists and has no owner" in conflicts[0]["message"]


async def test_the_retry_annotations_are_left_alone_while_the_adapter_is_being_deleted(world: World) -> None:
    engine = world.add_pod("pod-0")
    engine.fail("load", REFUSED)
    world.apply(manifest(replicas=1))
    await world.reconcile()
    retry_count = "adapter.model.aibrix.ai/retry-count.pod-0"
    assert world.adapter()["metadata"]["annotations"][retry_count] == "1"
    engine.fail("unload", EngineRejected("unload: the engine answered 500", status=500))
    world.delete("qwen-code-lora")
    await world.reconcile()
    # The placement is Unloading now, which wants no retry annotation; a deleted object's metadata is not
    # rewritten for it (the object is going, and its status says what happens).
    assert world.status()["phase"] == "Terminating"
    assert world.adapter()["metadata"]["annotations"][retry_count] == "1"
