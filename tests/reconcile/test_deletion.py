"""A deleted adapter is unloaded from every pod before its finalizer goes; a failing unload is retried on a timer
and given up at its deadline; an adapter forced off the cluster while the operator was away is cleaned up from
the log alone."""

from __future__ import annotations

from datetime import timedelta

from modeladapter.adapters.outcomes import EngineRejected
from modeladapter.fsm.events import Finalized, PhaseChanged, SpecObserved, Unloaded, UnloadFailed
from modeladapter.operator.kube.client import MODELADAPTERS
from tests.e2e.conftest import adapter_manifest as manifest
from tests.reconcile.conftest import World

FAILING = EngineRejected("unload: the engine answered 500", status=500)


async def test_deletion_unloads_everywhere_then_ends_the_stream_then_removes_the_finalizer(world: World) -> None:
    engines = [world.add_pod("pod-0"), world.add_pod("pod-1")]
    world.apply(manifest(replicas=2))
    await world.reconcile()
    uid = world.uid()
    assert world.adapter()["metadata"]["finalizers"] == ["adapter.model.aibrix.ai/finalizer"]
    world.delete("qwen-code-lora")
    result = await world.reconcile(uid=uid)
    assert all(engine.served == {} for engine in engines)
    events = await world.events(uid=uid)
    assert [e.to_phase.value for e in events if isinstance(e, PhaseChanged)][-1] == "Terminating"
    assert isinstance(events[-1], Finalized) and result.finalized
    if world.cluster.get(MODELADAPTERS, "default", "qwen-code-lora") is not None:
        # The pass wrote the status (Terminating) before its unloads: the finalizer patch, sent with the version
        # the pass began from, meets a conflict, and the next pass (in a second) removes it.
        assert result.requeue_after == timedelta(seconds=1)
        result = await world.reconcile(uid=uid)
    assert result.requeue_after is None and result.appended == (), "a finalized stream takes nothing more"
    assert world.cluster.get(MODELADAPTERS, "default", "qwen-code-lora") is None, (
        "the finalizer went, so did the object"
    )


async def test_a_pod_that_is_gone_counts_as_unloaded(world: World) -> None:
    world.add_pod("pod-0")
    world.apply(manifest(replicas=1))
    await world.reconcile()
    uid = world.uid()
    world.delete_pod("pod-0")
    world.delete("qwen-code-lora")
    await world.reconcile(uid=uid)
    outcomes = [e.outcome for e in await world.events(uid=uid) if isinstance(e, Unloaded)]
    assert outcomes == ["pod-gone"] and (await world.state(uid=uid)).finalized


async def test_a_failing_unload_is_retried_on_a_timer_and_given_up_at_its_deadline(world: World) -> None:
    engine = world.add_pod("pod-0")
    world.apply(manifest(replicas=1))
    await world.reconcile()
    uid = world.uid()
    engine.fail("unload", FAILING, times=100)
    world.delete("qwen-code-lora")
    result = await world.reconcile(uid=uid)
    assert result.requeue_after == timedelta(seconds=5) and world.adapter()["status"]["phase"] == "Terminating"
    for _ in range(12):
        world.clock.advance(5)
        result = await world.reconcile(uid=uid)
    events = await world.events(uid=uid)
    failures = [e for e in events if isinstance(e, UnloadFailed)]
    assert failures[-1].abandoned and not any(f.abandoned for f in failures[:-1])
    assert 10 <= len(failures) <= 14, "one try every 5 s for the 60 s of the deadline"
    assert isinstance(events[-1], Finalized) and result.requeue_after is None


async def test_an_adapter_forced_off_while_the_operator_was_away_is_unloaded_from_the_log_alone(world: World) -> None:
    engine = world.add_pod("pod-0")
    world.apply(manifest(replicas=1))
    await world.reconcile()
    uid = world.uid()
    force_off(world)
    assert world.cluster.adapter(uid) is None
    result = await world.reconcile(uid=uid)
    assert engine.served == {} and result.finalized
    assert isinstance((await world.events(uid=uid))[-1], Finalized)


def force_off(world: World, name: str = "qwen-code-lora") -> None:
    """What `kubectl patch --type merge -p '{"metadata":{"finalizers":null}}'` and a delete do while the operator
    is away: the object is gone without waiting for the operator."""
    world.cluster.store.patch(
        world.cluster.store.resource_type("model.aibrix.ai", "v1alpha1", "modeladapters"),
        "default",
        name,
        "application/merge-patch+json",
        {"metadata": {"finalizers": None}},
    )
    world.delete(name)


async def test_an_adapter_forced_off_is_unloaded_with_the_key_of_the_secret_its_log_recorded(world: World) -> None:
    engine = world.add_pod("pod-0")
    world.add_secret("engine-key", {"token": "s3cr3t-t0ken"})
    world.apply(manifest(replicas=1, apiKeySecretRef={"name": "engine-key", "key": "token"}))
    await world.reconcile()
    uid = world.uid()
    observed = [e for e in await world.events(uid=uid) if isinstance(e, SpecObserved)]
    assert (observed[-1].api_key_secret, observed[-1].api_key_secret_key) == ("engine-key", "token")
    assert "s3cr3t-t0ken" not in repr(await world.events(uid=uid)), "where the key is, never the key"
    force_off(world)
    engine.keys.clear()
    result = await world.reconcile(uid=uid)
    assert engine.served == {} and result.finalized
    assert engine.keys == ["s3cr3t-t0ken"], "the unload carried the key"


async def test_an_unload_given_up_at_its_deadline_is_a_warning_event_even_when_the_object_is_gone(
    world: World,
) -> None:
    engine = world.add_pod("pod-0")
    world.apply(manifest(replicas=1))
    await world.reconcile()
    uid = world.uid()
    engine.fail("unload", FAILING, times=100)
    force_off(world)
    for _ in range(14):
        await world.reconcile(uid=uid)
        world.clock.advance(5)
    warnings = [e for e in world.k8s_events() if e["reason"] == "UnloadAbandoned"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning"
    assert warnings[0]["message"].startswith("Gave up unloading default/qwen-code-lora from pod pod-0 at its deadline")
    assert warnings[0]["involvedObject"]["uid"] == uid
    assert (await world.state(uid=uid)).finalized
