"""A new adapter reaches Running through the documented phases, on the pods its spec and the policies choose,
and a pass with nothing new to do writes nothing."""

from __future__ import annotations

from datetime import timedelta

from modeladapter.fsm.events import PhaseChanged
from modeladapter.fsm.phases import Phase
from modeladapter.operator.kube.client import ENDPOINTSLICES, SERVICES
from tests.e2e.conftest import adapter_manifest as manifest
from tests.reconcile.conftest import World


async def test_one_pass_goes_pending_scheduled_loading_bound_running_and_says_so_as_documented(world: World) -> None:
    world.add_pod("pod-0")
    world.apply(manifest(replicas=1))
    result = await world.reconcile()
    phases = [(e.from_phase, e.to_phase) for e in await world.events() if isinstance(e, PhaseChanged)]
    assert phases == [
        (None, Phase.PENDING),
        (Phase.PENDING, Phase.SCHEDULED),
        (Phase.SCHEDULED, Phase.LOADING),
        (Phase.LOADING, Phase.BOUND),
        (Phase.BOUND, Phase.RUNNING),
    ]
    status = world.status()
    assert (status["phase"], status["instances"], status["readyReplicas"]) == ("Running", ["pod-0"], 1)
    assert world.condition("Scheduled")["message"] == (
        "ModelAdapter default/qwen-code-lora has selected 1 pods for scheduling: [pod-0]"
    )
    assert world.condition("Ready")["reason"] == "ModelAdapterAvailable"
    assert result.requeue_after == timedelta(seconds=30), "next: the verify interval"
    assert world.engine("pod-0").served == {"qwen-code-lora": "ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora"}


async def test_the_service_and_endpoint_slice_list_exactly_the_instances(world: World) -> None:
    world.add_pod("pod-0")
    world.add_pod("pod-1")
    world.apply(manifest(replicas=2))
    await world.reconcile()
    endpoints = world.cluster.get(ENDPOINTSLICES, "default", "qwen-code-lora")
    assert endpoints is not None and sorted(e["addresses"][0] for e in endpoints["endpoints"]) == [
        "10.0.0.2",
        "10.0.0.3",
    ]
    service = world.cluster.get(SERVICES, "default", "qwen-code-lora")
    assert service is not None and service["spec"]["clusterIP"] == "None"
    assert service["metadata"]["ownerReferences"][0]["uid"] == world.uid()


async def test_a_pass_with_nothing_new_appends_nothing_and_writes_nothing(world: World) -> None:
    world.add_pod("pod-0")
    world.apply(manifest(replicas=1))
    await world.reconcile()
    before = len(world.cluster.kube.requests)
    result = await world.reconcile()
    writes = [r for r in world.cluster.kube.requests[before:] if r[0] != "get"]
    assert result.appended == () and writes == []
    assert world.engine("pod-0").count("list") == 1, "only the load's own check: verification waits for its interval"


async def test_replicas_omitted_means_every_healthy_stable_pod_and_n_means_exactly_n(world: World) -> None:
    for index in range(3):
        world.add_pod(f"pod-{index}")
    world.add_pod("not-ready", ready=False)
    world.apply(manifest("every"))
    world.apply(manifest("two", replicas=2))
    await world.reconcile("every")
    await world.reconcile("two")
    assert sorted(world.status("every")["instances"]) == ["pod-0", "pod-1", "pod-2"]
    assert len(world.status("two")["instances"]) == 2 and world.status("two")["desiredReplicas"] == 2


async def test_a_pod_ready_for_less_than_the_stability_window_waits_and_the_adapter_looks_again_then(
    world: World,
) -> None:
    world.add_pod("new", ready_for=2.0)
    world.apply(manifest(replicas=1))
    result = await world.reconcile()
    assert world.status()["phase"] == "Pending"
    assert world.condition("Scheduled")["reason"] == "WaitingForStablePods"
    assert result.requeue_after == timedelta(seconds=3)
    world.clock.advance(3)
    await world.reconcile()
    assert world.status()["phase"] == "Running"


async def test_least_adapters_spreads_and_bin_pack_packs(world: World) -> None:
    for index in range(3):
        world.add_pod(f"pod-{index}")
    for name in ("spread-a", "spread-b"):
        world.apply(manifest(name, replicas=1))
        await world.reconcile(name)
    spread = {world.status("spread-a")["instances"][0], world.status("spread-b")["instances"][0]}
    assert len(spread) == 2, "least-adapters puts the second adapter on another pod"
    world.apply(manifest("packed", replicas=1, schedulerName="bin-pack"))
    await world.reconcile("packed")
    assert world.status("packed")["instances"][0] in spread, "bin-pack fills a used pod, the empty one stays free"


async def test_a_pod_at_capacity_is_never_chosen_and_the_adapter_says_why(world: World) -> None:
    world.add_pod("small", annotations={"adapter.model.aibrix.ai/capacity": "1"})
    world.apply(manifest("first", replicas=1))
    world.apply(manifest("second", replicas=1))
    await world.reconcile("first")
    await world.reconcile("second")
    assert world.status("first")["phase"] == "Running"
    assert world.status("second")["phase"] == "Pending"
    assert world.condition("Scheduled", "second")["reason"] == "InsufficientCapacity"
    assert world.engine("small").served.keys() == {"first"}


async def test_the_engines_capacity_flag_is_a_capacity_too(world: World) -> None:
    world.add_pod("pod-0", args=["--enable-lora", "--max-cpu-loras", "1"])
    world.apply(manifest("first", replicas=1))
    world.apply(manifest("second", replicas=1))
    await world.reconcile("first")
    await world.reconcile("second")
    assert world.condition("Scheduled", "second")["reason"] == "InsufficientCapacity"


async def test_kubernetes_events_tell_the_story_with_the_documented_reasons(world: World) -> None:
    world.add_pod("pod-0")
    world.apply(manifest(replicas=1))
    await world.reconcile()
    reasons = [event["reason"] for event in world.k8s_events()]
    assert sorted(reasons) == sorted(["Scheduled", "Loading", "Loaded", "Running"])
