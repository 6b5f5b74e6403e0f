"""A Service of the adapter's name that belongs to something else is never taken over, and the Warning Event
says who it belongs to: nobody, another kind of object, or another ModelAdapter (its uid tells a person which
one, and whether it is still there)."""

from __future__ import annotations

from typing import Any

from modeladapter.operator.kube.client import MODELADAPTERS, PODS, Resource
from tests.e2e.conftest import adapter_manifest as manifest
from tests.reconcile.conftest import World

STAYS_BOUND = "; the adapter stays Bound until it is renamed or removed"


def reference_to(world: World, resource: Resource, name: str) -> dict[str, Any]:
    # The owner must exist: the emulator's garbage collector deletes an object whose owners are all gone.
    found = world.cluster.get(resource, "default", name)
    assert found is not None
    version = f"{resource.group}/{resource.version}" if resource.group else resource.version
    return {"apiVersion": version, "kind": resource.kind, "name": name, "uid": found["metadata"]["uid"]}


def seed_service_owned_by(world: World, owners: list[dict[str, Any]]) -> None:
    metadata: dict[str, Any] = {"name": "qwen-code-lora", "namespace": "default"}
    if owners:
        metadata["ownerReferences"] = owners
    world.cluster.seed({"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": {"ports": [{"port": 80}]}})


async def conflict_message(world: World) -> str:
    world.add_pod("pod-0")
    world.apply(manifest(replicas=1))
    await world.reconcile()
    assert world.status()["phase"] == "Bound"
    (conflict,) = [e for e in world.k8s_events() if e["reason"] == "ServiceConflict"]
    return str(conflict["message"])


async def test_a_service_without_owner_is_said_to_have_none(world: World) -> None:
    seed_service_owned_by(world, [])
    said = await conflict_message(world)
    assert said == f"Service default/qwen-code-lora exists and has no owner{STAYS_BOUND}"


async def test_a_service_owned_by_another_kind_of_object_names_it(world: World) -> None:
    world.add_pod("chat-frontend-0", labels={"app": "chat-frontend"})
    seed_service_owned_by(world, [reference_to(world, PODS, "chat-frontend-0")])
    said = await conflict_message(world)
    assert said == f"Service default/qwen-code-lora exists and is owned by Pod default/chat-frontend-0{STAYS_BOUND}"


async def test_a_service_owned_by_another_modeladapter_names_it_and_its_uid(world: World) -> None:
    other = world.apply(manifest("other-lora"))
    seed_service_owned_by(world, [reference_to(world, MODELADAPTERS, "other-lora")])
    said = await conflict_message(world)
    assert said == (
        f"Service default/qwen-code-lora exists and is owned by ModelAdapter default/other-lora (uid {other})"
        f"{STAYS_BOUND}"
    )


async def test_a_service_with_several_owners_names_every_one(world: World) -> None:
    other = world.apply(manifest("other-lora"))
    world.add_pod("chat-frontend-0", labels={"app": "chat-frontend"})
    owners = [reference_to(world, MODELADAPTERS, "other-lora"), reference_to(world, PODS, "chat-frontend-0")]
    seed_service_owned_by(world, owners)
    said = await conflict_message(world)
    assert said == (
        f"Service default/qwen-code-lora exists and is owned by ModelAdapter default/other-lora (uid {other}) "
        f"and Pod default/chat-frontend-0{STAYS_BOUND}"
    )
