"""A pod that goes away or is not healthy leaves the instances at once, and the adapter moves; an engine that
lost the adapter (another client unloaded it, or the engine restarted) gets it back; an engine that only evicted
it from its caches, as vLLM does beyond `--max-cpu-loras`, has lost nothing and is left alone."""

from __future__ import annotations

import asyncio

import httpx

from modeladapter.fsm.events import AdapterMissing
from modeladapter.fsm.phases import PlacementState
from modeladapter.store.queries import phase_history
from tests.e2e.conftest import FAST, Sandbox, adapter_manifest


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


async def test_an_unload_by_another_client_or_an_engine_restart_is_detected_and_repaired(sandbox: Sandbox) -> None:
    (pod,) = await sandbox.add_pods(1)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    await sandbox.phase("Running")
    engine = sandbox.engine(pod)
    assert engine.unload_by_another_client("qwen-code-lora")
    await sandbox.eventually(lambda: sandbox.serves(pod), what="the reload after an unload by another client")
    await engine.restart()
    await sandbox.eventually(lambda: sandbox.serves(pod), what="the reload after a restart")

    async def reload_recorded() -> bool:
        # The engine answers the load before the operator has appended its outcome.
        placement = (await sandbox.state()).placement(pod)
        triggers = [t.trigger for t in await phase_history(sandbox.store, namespace="default", name="qwen-code-lora")]
        return placement is not None and placement.state is PlacementState.LOADED and triggers[-1] == "service_bound"

    await sandbox.eventually(reload_recorded, what="the reload recorded in the log, and the adapter Running again")


async def test_an_eviction_inside_the_engine_loses_nothing_and_is_left_alone(sandbox: Sandbox) -> None:
    """vLLM lists registration, not residency: an adapter evicted from the worker's caches is still in
    `/v1/models`, and its next request reads it back. Verifications must see it as loaded: no loss, no reload."""
    (pod,) = await sandbox.add_pods(1)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    await sandbox.phase("Running")
    engine = sandbox.engine(pod)

    def calls(path: str) -> int:
        return sum(1 for call in engine.calls if call.path == path)

    loads, listings = calls("/v1/load_lora_adapter"), calls("/v1/models")
    assert engine.evict("qwen-code-lora") and not engine.resident
    await asyncio.sleep(4 * FAST.verify_interval.total_seconds())
    assert calls("/v1/models") > listings, "the operator verified meanwhile"
    events = await sandbox.store.read((await sandbox.adapter())["metadata"]["uid"])
    assert not [e for e in events if isinstance(e.payload, AdapterMissing)]
    assert calls("/v1/load_lora_adapter") == loads, "nothing reloaded"
    status = await sandbox.status()
    assert status["phase"] == "Running" and status["instances"] == [pod]
    async with httpx.AsyncClient(base_url=engine.base_url) as http:
        answer = await http.post("/v1/completions", json={"model": "qwen-code-lora", "prompt": "hello"})
    assert answer.status_code == 200 and engine.resident == ("qwen-code-lora",) and engine.readmissions == 1
