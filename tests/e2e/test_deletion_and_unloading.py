"""A deleted adapter is unloaded from every pod before its finalizer goes; an unload that keeps failing is
retried on a timer and given up at its deadline."""

from __future__ import annotations

import asyncio

from modeladapter.fsm.events import UnloadFailed
from modeladapter.fsm.phases import Phase, PlacementState
from modeladapter.sandbox.engine.faults import Fault
from modeladapter.store.queries import phase_history
from tests.e2e.conftest import FAST, Sandbox, adapter_manifest


async def test_a_failing_unload_is_retried_on_a_timer_and_given_up_at_its_deadline(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(2)
    await sandbox.start_operator()  # unload_timeout 3 s, backoff base 0.05 s
    await sandbox.apply(adapter_manifest(replicas=2))
    await sandbox.eventually(lambda: sandbox.ready(2), what="two instances")
    for pod in pods:
        sandbox.engine(pod).inject(Fault(status=500), route="unload", times=None)
    await sandbox.apply(adapter_manifest(replicas=1))
    await asyncio.sleep(FAST.unload_timeout.total_seconds() + 1.5)
    state = await sandbox.state()
    assert not any(p.state is PlacementState.UNLOADING for p in state.placements), "abandoned at the deadline"
    uid = state.stream_id
    assert uid is not None
    failures = [e for e in await sandbox.store.read(uid) if isinstance(e.payload, UnloadFailed)]
    bound = FAST.unload_timeout / FAST.backoff.base + 2
    assert failures and failures[-1].payload.abandoned and len(failures) <= bound, len(failures)


async def test_deletion_unloads_everywhere_then_removes_the_finalizer(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(3)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest())
    await sandbox.instances_ready(3)
    assert "adapter.model.aibrix.ai/finalizer" in (await sandbox.adapter())["metadata"]["finalizers"]
    uid = (await sandbox.adapter())["metadata"]["uid"]
    await sandbox.kubelet.delete(pods[2])  # a pod that is gone counts as unloaded
    await sandbox.delete()
    await sandbox.eventually(lambda: sandbox.gone(), what="the ModelAdapter to be gone")
    for pod in pods[:2]:
        assert "qwen-code-lora" not in sandbox.engine(pod).adapters
    history = await phase_history(sandbox.store, namespace="default", name="qwen-code-lora")
    assert history[-1].to_phase is Phase.TERMINATING
    (stream,) = await sandbox.store.streams(name="qwen-code-lora")
    assert stream.stream_id == uid and stream.finalized_at is not None


async def test_deletion_gives_up_on_an_unreachable_pod_after_the_deadline(sandbox: Sandbox) -> None:
    (pod,) = await sandbox.add_pods(1)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    await sandbox.phase("Running")
    await sandbox.engine(pod).refuse_connections()
    await sandbox.delete()
    await sandbox.eventually(lambda: sandbox.gone(), timeout=15, what="deletion within the unload deadline")
