"""A changed spec is acted on: a new artifact is loaded where the old one was, and a selector that leaves a pod
unloads the adapter from it."""

from __future__ import annotations

from tests.e2e.conftest import Sandbox, adapter_manifest


async def test_an_artifact_change_reloads_every_placement(sandbox: Sandbox) -> None:
    from modeladapter.sandbox.engine.adapter_files import write_peft_adapter

    pods = await sandbox.add_pods(2)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest())
    await sandbox.instances_ready(2)
    new_path = write_peft_adapter(sandbox.kubeconfig.parent / "adapters" / "v2")
    await sandbox.apply(adapter_manifest(artifactURL=str(new_path)))
    for pod in pods:
        await sandbox.eventually(lambda pod=pod: sandbox.serves(pod, path=str(new_path)), what=f"{pod} reloaded")
    status = await sandbox.eventually(
        lambda: sandbox.status_where(
            name="qwen-code-lora", check=lambda s: s.get("observedGeneration") == 2 and s.get("phase") == "Running"
        ),
        what="generation 2 Running",
    )
    assert sorted(status["instances"]) == pods


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
