"""A failed load is retried on the same pod with the documented backoff, five attempts at most, then the adapter
switches pods; an error the engine will not get over switches at once; with every pod exhausted the adapter is
Failed until the cool-down, then starts over."""

from __future__ import annotations

from datetime import timedelta

from modeladapter.adapters.outcomes import EngineUnavailable, IncompatibleAdapter
from modeladapter.fsm.events import LoadFailed, PhaseChanged, PodSwitched
from modeladapter.fsm.phases import PlacementState
from tests.e2e.conftest import adapter_manifest as manifest
from tests.reconcile.conftest import World

REFUSED = EngineUnavailable("load: vllm at http://10.0.0.2:8000 is unreachable (Connection refused)")
RANK = IncompatibleAdapter("load: LoRA rank 64 is greater than max_lora_rank 16", status=400)


async def test_a_retriable_failure_backs_off_5_s_and_the_next_attempt_comes_when_due(world: World) -> None:
    world.add_pod("pod-0").fail("load", REFUSED)
    world.apply(manifest(replicas=1))
    result = await world.reconcile()
    assert result.requeue_after == timedelta(seconds=5)
    placement = (await world.state()).placements[0]
    assert (placement.state, placement.attempts) == (PlacementState.BACKOFF, 1)
    world.clock.advance(4.9)
    await world.reconcile()
    assert world.engine("pod-0").count("load") == 1, "not before the backoff has passed"
    world.clock.advance(0.1)
    await world.reconcile()
    assert world.engine("pod-0").count("load") == 2 and world.status()["phase"] == "Running"


async def test_the_retry_annotations_mirror_a_retrying_placement_and_go_when_it_succeeds(world: World) -> None:
    world.add_pod("pod-0").fail("load", REFUSED, times=2)
    world.apply(manifest(replicas=1))
    await world.reconcile()
    world.clock.advance(5)
    await world.reconcile()
    annotations = world.adapter()["metadata"]["annotations"]
    assert annotations["adapter.model.aibrix.ai/retry-count.pod-0"] == "2"
    assert "adapter.model.aibrix.ai/last-retry-time.pod-0" in annotations
    world.clock.advance(10)
    await world.reconcile()
    assert not any(
        k.startswith("adapter.model.aibrix.ai/retry") for k in world.adapter()["metadata"].get("annotations") or {}
    )


async def test_after_five_refused_attempts_the_adapter_switches_pods_with_a_warning(world: World) -> None:
    world.add_pod("pod-0").fail("load", REFUSED, times=10)
    world.apply(manifest(replicas=1))
    await world.reconcile()
    world.add_pod("pod-1", ready_for=600)
    for wait in (5, 10, 20, 40, 80):
        world.clock.advance(wait)
        await world.reconcile()
    events = await world.events()
    assert [e.attempt for e in events if isinstance(e, LoadFailed)] == [1, 2, 3, 4, 5]
    assert [(e.from_pod, e.to_pod) for e in events if isinstance(e, PodSwitched)] == [("pod-0", "pod-1")]
    assert world.status()["instances"] == ["pod-1"]
    assert "MaxRetriesExceeded" in {e["reason"] for e in world.k8s_events()}


async def test_an_error_the_engine_will_not_get_over_switches_pods_in_the_same_pass(world: World) -> None:
    world.add_pod("pod-0").fail("load", RANK)
    world.add_pod("pod-1").fail("load", RANK)
    world.add_pod("pod-2")
    world.apply(manifest(replicas=1))
    await world.reconcile()
    assert world.status()["phase"] == "Running" and world.status()["instances"] == ["pod-2"]
    switches = [e for e in await world.events() if isinstance(e, PodSwitched)]
    assert switches and switches[-1].to_pod == "pod-2"
    assert {s.from_pod for s in switches} <= {"pod-0", "pod-1"}
    assert all(s.reason.startswith("MaxRetriesExceeded: IncompatibleAdapter") for s in switches)


async def test_with_every_pod_exhausted_the_adapter_is_failed_then_starts_over_after_the_cool_down(
    world: World,
) -> None:
    world.add_pod("pod-0").fail("load", RANK)
    world.apply(manifest(replicas=1))
    result = await world.reconcile()
    assert world.status()["phase"] == "Failed"
    assert world.condition("Ready")["reason"] == "ModelAdapterLoadingError"
    assert "rank 64 is greater than max_lora_rank 16" in world.condition("Ready")["message"]
    assert result.requeue_after == timedelta(seconds=300), "the cool-down"
    world.clock.advance(300)
    await world.reconcile()
    starts = [e.trigger for e in await world.events() if isinstance(e, PhaseChanged)][-5:]
    assert starts == ["retry_due", "pods_selected", "load_started", "load_verified", "service_bound"]
    assert world.status()["phase"] == "Running"


async def test_a_new_spec_gives_an_exhausted_pod_fresh_attempts_at_once(world: World) -> None:
    world.add_pod("pod-0").fail("load", RANK)
    world.apply(manifest(replicas=1))
    await world.reconcile()
    world.apply(manifest(replicas=1, artifactURL="huggingface://ai-blond/a-smaller-rank"))
    await world.reconcile()
    assert world.status()["phase"] == "Running", "no wait for the cool-down: the new artifact may be the fix"
