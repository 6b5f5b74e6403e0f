"""Kubernetes Events tell the story in `kubectl describe`; cut watches and expired histories do not stop anything."""

from __future__ import annotations

from collections import Counter

from modeladapter.fsm.events import PhaseChanged, PlacementChanged
from modeladapter.fsm.phases import Phase, PlacementState
from modeladapter.sandbox.engine.faults import Fault
from tests.e2e.conftest import Sandbox, adapter_manifest


async def reasons(sandbox: Sandbox, name: str = "qwen-code-lora") -> Counter[str]:
    return Counter(e["reason"] for e in await sandbox.events(name))


async def test_each_transition_is_an_event_with_the_seed_documentations_wording(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(2)
    await sandbox.start_operator()
    sandbox.engine(pods[0]).inject(Fault(status=503), route="load", times=None)
    sandbox.engine(pods[1]).inject(Fault(status=503), route="load", times=None)
    await sandbox.apply(adapter_manifest(replicas=1))
    await sandbox.eventually(lambda: _has(sandbox, "MaxRetriesExceeded"), timeout=15, what="MaxRetriesExceeded")
    sandbox.engine(pods[0]).clear_faults()
    sandbox.engine(pods[1]).clear_faults()
    await sandbox.phase("Running", timeout=20)
    seen = await reasons(sandbox)
    for reason in ("Scheduled", "Loading", "LoadFailed", "MaxRetriesExceeded", "PodSwitched", "Loaded", "Running"):
        assert seen[reason], f"no {reason} event in {dict(seen)}"
    events = await sandbox.events()
    warning = next(e for e in events if e["reason"] == "MaxRetriesExceeded")
    assert warning["type"] == "Warning"
    assert warning["message"].startswith("Max retries exceeded for pod ")
    scheduled = next(e for e in events if e["reason"] == "Scheduled")
    assert scheduled["message"].startswith("ModelAdapter has selected 1 pods for scheduling: [")
    assert all(e["involvedObject"]["kind"] == "ModelAdapter" for e in events)


async def test_losing_a_pod_and_deleting_the_adapter_are_events_too(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(2)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest())
    await sandbox.eventually(lambda: sandbox.ready(2), what="two instances")
    await sandbox.kubelet.mark_not_ready(pods[0])
    await sandbox.eventually(lambda: _has(sandbox, "PodLost"), what="PodLost")
    await sandbox.delete()
    await sandbox.eventually(lambda: _has(sandbox, "Unloaded"), what="Unloaded")


async def test_a_repeating_event_is_counted_not_repeated(sandbox: Sandbox) -> None:
    (pod,) = await sandbox.add_pods(1)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    await sandbox.phase("Running")
    engine = sandbox.engine(pod)
    for losses in range(1, 4):
        engine.unload_by_another_client("qwen-code-lora")
        await sandbox.eventually(lambda: _repaired_after(sandbox, losses), what=f"the repair of loss {losses}")

    async def counted_three_times() -> list[dict[str, object]] | None:
        lost = [e for e in await sandbox.events() if e["reason"] == "PodLost"]
        return lost if sum(int(str(e["count"])) for e in lost) == 3 else None

    (lost,) = await sandbox.eventually(counted_three_times, what="three losses counted")
    assert lost["count"] == 3


async def test_cut_watches_and_an_expired_history_are_survived(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(2)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest("first", replicas=1))
    await sandbox.phase("Running", "first")
    sandbox.server.cut_watches()  # a clean end of stream: watched again at once
    await sandbox.apply(adapter_manifest("second", replicas=1))
    await sandbox.phase("Running", "second", timeout=15)
    # Dropped connections, and while the informers wait to reconnect the pod they watch is deleted and the
    # history compacted: resuming from their resourceVersion answers 410, and they must list again.
    sandbox.server.cut_watches(abort=True)
    await sandbox.kubelet.delete(pods[0])
    sandbox.server.compact()
    await sandbox.apply(adapter_manifest("third", replicas=1))
    await sandbox.phase("Running", "third", timeout=15)
    first = await sandbox.eventually(lambda: _on(sandbox, "first", pods[1]), timeout=15, what="first to move")
    assert first["phase"] == "Running"
    informers = sandbox.operators[0].controller.cache
    assert informers.pods.relists + informers.adapters.relists >= 3, "the 410 made them list again"


async def _has(sandbox: Sandbox, reason: str) -> bool:
    return bool((await reasons(sandbox))[reason])


async def _repaired_after(sandbox: Sandbox, losses: int) -> bool:
    """The log has seen `losses` placements lost and the adapter is Running again after the last.

    Waiting only for the engine to list the adapter again would race the operator's own check of that
    load: an unload between the load and its verification is a failed load, not a lost placement."""
    events = await sandbox.store.read((await sandbox.adapter())["metadata"]["uid"])
    lost = [e for e in events if isinstance(e.payload, PlacementChanged) and e.payload.to_state is PlacementState.LOST]
    decisions = [e.payload for e in events if isinstance(e.payload, PhaseChanged)]
    return len(lost) == losses and decisions[-1].to_phase is Phase.RUNNING and decisions[-1].trigger == "service_bound"


async def _on(sandbox: Sandbox, name: str, pod: str) -> dict[str, object] | None:
    status = await sandbox.status(name)
    return status if status.get("instances") == [pod] else None
