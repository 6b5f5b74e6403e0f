"""A pod that goes away or is not healthy leaves the instances at once, and the adapter moves; an engine that
lost the adapter (eviction, restart) gets it back."""

from __future__ import annotations

from modeladapter.fsm.phases import PlacementState
from modeladapter.store.queries import phase_history
from tests.e2e.conftest import Sandbox, adapter_manifest


async def test_a_deleted_pod_leaves_the_instances_at_once_and_the_adapter_moves(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(2)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    (serving,) = (await sandbox.phase("Running"))["instances"]
    other = next(p for p in pods if p != serving)
    await sandbox.kubelet.delete(serving)
    moved = await sandbox.eventually(
        lambda: sandbox.status_where(
            name="qwen-code-lora", check=lambda s: s.get("instances") == [other] and s.get("phase") == "Running"
        ),
        what="the move",
    )
    _, endpoint_slice = await sandbox.service_and_slice()
    assert [e["addresses"] for e in endpoint_slice["endpoints"]] == [[sandbox.pod_ip(other)]]
    assert moved["readyReplicas"] == 1


async def test_an_unhealthy_pod_leaves_the_instances_at_once(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(2)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest())
    await sandbox.instances_ready(2)
    await sandbox.kubelet.mark_not_ready(pods[0])
    status = await sandbox.eventually(
        lambda: sandbox.status_where(name="qwen-code-lora", check=lambda s: s.get("instances") == [pods[1]]),
        what="one instance",
    )
    assert status["phase"] == "Running"


async def test_an_engine_eviction_or_restart_is_detected_and_repaired(sandbox: Sandbox) -> None:
    (pod,) = await sandbox.add_pods(1)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    await sandbox.phase("Running")
    engine = sandbox.engine(pod)
    engine.evict("qwen-code-lora")
    await sandbox.eventually(lambda: sandbox.serves(pod), what="the reload after an eviction")
    await engine.restart()
    await sandbox.eventually(lambda: sandbox.serves(pod), what="the reload after a restart")

    async def reload_recorded() -> bool:
        # The engine answers the load before the operator has appended its outcome.
        placement = (await sandbox.state()).placement(pod)
        triggers = [t.trigger for t in await phase_history(sandbox.store, namespace="default", name="qwen-code-lora")]
        return placement is not None and placement.state is PlacementState.LOADED and triggers[-1] == "service_bound"

    await sandbox.eventually(reload_recorded, what="the reload recorded in the log, and the adapter Running again")
