"""A changed spec is acted on: a selector that leaves a pod unloads the adapter from it (a new artifact rolls
over the pods: `test_rolling_updates.py`)."""

from __future__ import annotations

from tests.e2e.conftest import Sandbox, adapter_manifest


async def test_a_selector_change_unloads_from_pods_that_no_longer_match(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(2)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest())
    await sandbox.instances_ready(2)
    # Only pods of zone a from now on; label one pod so.
    pod = sandbox.server.get("v1", "Pod", "default", pods[0])
    assert pod is not None
    await sandbox.kube.patch(
        __import__("modeladapter.operator.kube.client", fromlist=["PODS"]).PODS,
        "default",
        pods[0],
        {"metadata": {"labels": {"zone": "a"}}},
    )
    selector = {
        "matchLabels": {"model.aibrix.ai/name": "qwen-coder-1-5b-instruct"},
        "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}],
    }
    await sandbox.apply(adapter_manifest(podSelector=selector))
    await sandbox.eventually(
        lambda: sandbox.status_where(name="qwen-code-lora", check=lambda s: s.get("instances") == [pods[0]]),
        what="one instance",
    )
    await sandbox.eventually(lambda: sandbox.lacks(pods[1]), what="the unload")
