"""Which pods get an adapter: Ready, stable and not terminating; as many as `replicas` says; chosen by the
adapter's policy; never beyond a pod's capacity, even when adapters arrive together."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.conftest import FAST, POD_LABELS, Sandbox, adapter_manifest


async def test_adapters_arriving_together_do_not_overfill_a_pod(sandbox: Sandbox) -> None:
    from datetime import UTC, datetime, timedelta

    await sandbox.kubelet.create_pod(
        "small",
        "default",
        labels=POD_LABELS,
        annotations={"adapter.model.aibrix.ai/capacity": "1"},
        since=datetime.now(UTC) - timedelta(minutes=5),
    )
    await sandbox.start_operator()
    await asyncio.gather(*(sandbox.apply(adapter_manifest(f"a{i}", replicas=1)) for i in range(3)))
    await sandbox.eventually(lambda: _phases(sandbox, 3), timeout=10, what="every adapter to settle")
    phases = sorted([str((await sandbox.status(f"a{i}")).get("phase")) for i in range(3)])
    assert phases == ["Pending", "Pending", "Running"], phases
    assert len(sandbox.engine("small").adapters) == 1


@pytest.mark.parametrize("replicas", [1, None], ids=["replicas-1", "replicas-omitted"])
async def test_pods_must_be_ready_stable_and_not_terminating(sandbox: Sandbox, replicas: int | None) -> None:
    """Only a pod Ready for the stability window gets the adapter; until then the adapter says why it waits."""
    await sandbox.add_pods(1, ready_since=datetime.now(UTC))
    await sandbox.start_operator(replace(FAST, stability_window=timedelta(seconds=1.5)))
    await sandbox.apply(adapter_manifest(replicas=replicas))
    waiting = await sandbox.phase("Pending")
    scheduled = {c["type"]: c for c in waiting["conditions"]}.get("Scheduled")
    assert scheduled is not None and scheduled["reason"] == "WaitingForStablePods", waiting
    running = await sandbox.phase("Running", timeout=10)
    assert running["instances"] == ["qwen-coder-1-5b-instruct-0"]


async def test_a_terminating_or_unready_pod_is_never_chosen(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(3)
    await sandbox.kubelet.mark_not_ready(pods[0])
    await sandbox.kubelet.terminate(pods[1])
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest())
    status = await sandbox.phase("Running")
    assert status["instances"] == [pods[2]]
    assert (status["candidates"], status["desiredReplicas"]) == (1, 1)


async def test_replicas_omitted_means_every_healthy_pod_and_n_means_exactly_n(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(3)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest("everywhere"))
    await sandbox.apply(adapter_manifest("two", replicas=2))
    everywhere = await sandbox.phase("Running", "everywhere")
    two = await sandbox.instances_ready(2, "two")
    assert sorted(everywhere["instances"]) == pods and everywhere["desiredReplicas"] == 3
    assert len(set(two["instances"])) == 2 and two["desiredReplicas"] == 2
    # One more pod: the everywhere adapter follows it; the two-replica one stays at two.
    (extra,) = await sandbox.add_pods(1, prefix="late")
    await sandbox.eventually(
        lambda: sandbox.status_where(name="everywhere", check=lambda s: extra in s.get("instances", [])),
        what="the new pod",
    )
    await asyncio.sleep(0.3)
    assert len((await sandbox.status("two"))["instances"]) == 2


async def test_least_adapters_spreads_and_bin_pack_packs(sandbox: Sandbox) -> None:
    await sandbox.add_pods(3)
    await sandbox.start_operator()
    for index in range(3):
        await sandbox.apply(adapter_manifest(f"spread-{index}", replicas=1, schedulerName="least-adapters"))
        await sandbox.phase("Running", f"spread-{index}")
    spread = {(await sandbox.status(f"spread-{i}"))["instances"][0] for i in range(3)}
    assert len(spread) == 3, "least-adapters puts one adapter on each pod"
    for index in range(2):
        await sandbox.apply(adapter_manifest(f"pack-{index}", replicas=1, schedulerName="bin-pack"))
        await sandbox.phase("Running", f"pack-{index}")
    packed = {(await sandbox.status(f"pack-{i}"))["instances"][0] for i in range(2)}
    assert len(packed) == 1, "bin-pack puts both on the fullest pod"


async def test_a_pod_at_capacity_is_never_chosen(sandbox: Sandbox) -> None:
    await sandbox.kubelet.create_pod(
        "small",
        "default",
        labels={"model.aibrix.ai/name": "qwen-coder-1-5b-instruct", "adapter.model.aibrix.ai/enabled": "true"},
        annotations={"adapter.model.aibrix.ai/capacity": "1"},
        since=datetime.now(UTC) - timedelta(minutes=5),
    )
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest("first", replicas=1))
    await sandbox.phase("Running", "first")
    await sandbox.apply(adapter_manifest("second", replicas=1))
    pending = await sandbox.phase("Pending", "second")
    scheduled = {c["type"]: c for c in pending["conditions"]}["Scheduled"]
    assert (scheduled["status"], scheduled["reason"]) == ("False", "InsufficientCapacity")
    assert "small" in scheduled["message"]


async def _phases(sandbox: Sandbox, count: int) -> bool:
    phases = [str((await sandbox.status(f"a{i}")).get("phase")) for i in range(count)]
    return sorted(phases) == ["Pending", "Pending", "Running"]
