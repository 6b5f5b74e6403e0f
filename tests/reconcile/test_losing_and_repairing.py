"""The status never lies about pods and engines: a deleted or unready pod leaves the instances and the
EndpointSlice in the pass that sees it, before anything is reloaded; an engine that lost the adapter is noticed
at the verify interval and repaired."""

from __future__ import annotations

from modeladapter.adapters.outcomes import EngineUnavailable
from modeladapter.fsm.events import AdapterMissing, PodLost
from modeladapter.operator.kube.client import ENDPOINTSLICES
from tests.e2e.conftest import adapter_manifest as manifest
from tests.reconcile.conftest import World
from tests.reconcile.engines import Operation


def listed(world: World) -> list[str]:
    endpoints = world.cluster.get(ENDPOINTSLICES, "default", "qwen-code-lora")
    return sorted(e["addresses"][0] for e in (endpoints or {}).get("endpoints") or [])


async def test_a_deleted_pod_leaves_at_once_and_the_adapter_moves_to_another(world: World) -> None:
    world.add_pod("pod-0")
    world.apply(manifest(replicas=1))
    await world.reconcile()
    world.add_pod("pod-1")
    serving = world.status()["instances"][0]
    world.delete_pod(serving)
    await world.reconcile()
    assert world.status()["instances"] != [serving] and world.status()["phase"] == "Running"
    assert serving in {e.pod for e in await world.events() if isinstance(e, PodLost)}


async def test_an_unready_pod_leaves_the_instances_and_the_endpoint_slice_at_once(world: World) -> None:
    world.add_pod("pod-0")
    world.add_pod("pod-1")
    world.apply(manifest(replicas=2))
    await world.reconcile()
    world.set_ready("pod-0", False)
    await world.reconcile()
    assert world.status()["instances"] == ["pod-1"] and listed(world) == ["10.0.0.3"]


async def test_an_adapter_the_engine_stops_listing_is_noticed_at_the_verify_interval_and_repaired(
    world: World,
) -> None:
    world.add_pod("pod-0")
    world.apply(manifest(replicas=1))
    await world.reconcile()
    world.engine("pod-0").unload_by_another_client("qwen-code-lora")
    world.clock.advance(29)
    await world.reconcile()
    assert world.engine("pod-0").count("load") == 1, "not verified again before the interval"
    world.clock.advance(1)
    await world.reconcile()
    missing = [e for e in await world.events() if isinstance(e, AdapterMissing)]
    assert [m.pod for m in missing] == ["pod-0"] and "not listed" in missing[0].reason
    assert world.engine("pod-0").served.keys() == {"qwen-code-lora"} and world.status()["phase"] == "Running"


async def test_an_unreachable_engine_at_verification_loses_the_instance_and_it_is_reloaded(world: World) -> None:
    engine = world.add_pod("pod-0")
    world.apply(manifest(replicas=1))
    await world.reconcile()
    engine.fail("list", EngineUnavailable("list: connection refused"))
    world.clock.advance(30)
    await world.reconcile()
    reasons = [e.reason for e in await world.events() if isinstance(e, AdapterMissing)]
    assert reasons == ["engine unreachable: EngineUnavailable: list: connection refused"]
    assert engine.count("load") == 2 and world.status()["phase"] == "Running"


async def test_a_lost_instance_leaves_the_status_and_the_endpoints_before_its_reload_is_called(world: World) -> None:
    engine = world.add_pod("pod-0")
    world.add_pod("pod-1")
    world.apply(manifest(replicas=2))
    await world.reconcile()
    engine.unload_by_another_client("qwen-code-lora")
    seen_during_reload: list[tuple[list[str], list[str]]] = []

    async def look(operation: Operation, name: str) -> None:
        if operation == "load":
            seen_during_reload.append((world.status()["instances"], listed(world)))

    engine.on_call = look
    world.clock.advance(30)
    await world.reconcile()
    assert seen_during_reload == [(["pod-1"], ["10.0.0.3"])]
    assert sorted(world.status()["instances"]) == ["pod-0", "pod-1"]
