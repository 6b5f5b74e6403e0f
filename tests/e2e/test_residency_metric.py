"""The operator exports where each adapter is verified loaded, one series per instance, for a LoRA-affinity router
or a dashboard (`modeladapter_adapter_verified{namespace, adapter, pod}`), and keeps it as current as the status."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import OperatorProcess, Sandbox, adapter_manifest


async def verified(operator: OperatorProcess) -> set[tuple[str, str, str]]:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{operator.probe_port}/metrics", timeout=5)).text
    return {
        (sample.labels["namespace"], sample.labels["adapter"], sample.labels["pod"])
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "modeladapter_adapter_verified" and sample.value == 1
    }


async def test_the_verified_series_follow_the_instances_through_a_pod_loss_and_a_deletion(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(3)
    operator = sandbox.spawn_operator("--no-leader-election")
    await sandbox.apply(adapter_manifest(replicas=2))
    await sandbox.instances_ready(2)
    instances = (await sandbox.status())["instances"]

    async def series_are(pods_now: set[str]) -> bool:
        return await verified(operator) == {("default", "qwen-code-lora", pod) for pod in pods_now}

    await sandbox.eventually(lambda: series_are(set(instances)), what="one series per instance")

    await sandbox.kubelet.delete(instances[0])
    moved = await sandbox.eventually(
        lambda: sandbox.status_where(lambda s: s.get("readyReplicas") == 2 and instances[0] not in s["instances"]),
        what="the move",
    )
    await sandbox.eventually(lambda: series_are(set(moved["instances"])), what="the lost pod's series gone")
    assert set(moved["instances"]) <= set(pods)

    await sandbox.delete()
    await sandbox.eventually(sandbox.gone, what="the adapter gone")
    await sandbox.eventually(lambda: series_are(set()), what="every series gone")
