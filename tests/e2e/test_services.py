"""The adapter's Service and EndpointSlice are never taken from another owner, and the adapter says so where
a person looks."""

from __future__ import annotations

from modeladapter.operator.kube.client import SERVICES
from tests.e2e.conftest import Sandbox, adapter_manifest


async def test_a_service_that_is_not_ours_is_never_taken_over(sandbox: Sandbox) -> None:
    await sandbox.add_pods(1)
    user_service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "qwen-code-lora", "labels": {"team": "mine"}},
        "spec": {"selector": {"app": "mine"}, "ports": [{"name": "web", "port": 80, "targetPort": 8080}]},
    }
    await sandbox.kube.create(SERVICES, "default", user_service)
    running = await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    bound = await sandbox.phase("Bound")
    assert bound["instances"], "the adapter is loaded; only its Service is missing"
    service = await sandbox.kube.get(SERVICES, "default", "qwen-code-lora")
    assert service["spec"]["ports"][0]["name"] == "web" and "ownerReferences" not in service["metadata"]
    assert running.controller.errors == 0


async def test_a_service_of_the_name_owned_by_someone_else_is_left_alone_and_said_so(sandbox: Sandbox) -> None:
    await sandbox.add_pods(1)
    theirs = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "qwen-code-lora"},
              "spec": {"ports": [{"port": 80}], "selector": {"app": "theirs"}}}  # fmt: skip
    await sandbox.kube.create(SERVICES, "default", theirs)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    status = await sandbox.phase("Bound")

    async def conflict_told() -> list[dict[str, object]] | None:
        found = [e for e in await sandbox.events() if e["reason"] == "ServiceConflict"]
        return found or None

    (event,) = await sandbox.eventually(conflict_told, what="a ServiceConflict Event")
    assert event["type"] == "Warning" and "Service default/qwen-code-lora" in str(event["message"])
    assert status["instances"] == ["qwen-coder-1-5b-instruct-0"]
    service = await sandbox.kube.get(SERVICES, "default", "qwen-code-lora")
    assert service["spec"]["selector"] == {"app": "theirs"} and not service["metadata"].get("ownerReferences")
