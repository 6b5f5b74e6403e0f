"""The adapter's Service and EndpointSlice are never taken from another owner, and the adapter says so where
a person looks; its own are put back at once when someone else deletes or edits them, and that is recorded."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from modeladapter.fsm.events import OwnedObjectRestored
from modeladapter.operator.kube.client import ENDPOINTSLICES, SERVICES, NotFound
from modeladapter.operator.kube.services import ADAPTER_LABEL
from tests.e2e.conftest import FAST, Sandbox, adapter_manifest


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


async def test_a_service_or_endpoint_slice_deleted_or_edited_by_someone_else_is_put_back_at_once_and_recorded(
    sandbox: Sandbox,
) -> None:
    await sandbox.add_pods(2)
    # Verification is far off: what puts the objects back is the watch, not the periodic look at the engines.
    running = await sandbox.start_operator(replace(FAST, verify_interval=timedelta(minutes=10)))
    await sandbox.apply(adapter_manifest(replicas=2))
    await sandbox.phase("Running")
    name = "qwen-code-lora"
    listed = addresses(await sandbox.kube.get(ENDPOINTSLICES, "default", name))
    assert len(listed) == 2

    async def slice_lists_the_instances() -> bool:
        try:
            return addresses(await sandbox.kube.get(ENDPOINTSLICES, "default", name)) == listed
        except NotFound:
            return False

    async def service_is_ours() -> bool:
        try:
            service = await sandbox.kube.get(SERVICES, "default", name)
        except NotFound:
            return False
        return service["metadata"].get("labels", {}).get(ADAPTER_LABEL) == name

    await sandbox.kube.delete(SERVICES, "default", name)
    await sandbox.eventually(service_is_ours, timeout=5, what="the deleted Service to be back")
    await sandbox.kube.delete(ENDPOINTSLICES, "default", name)
    await sandbox.eventually(slice_lists_the_instances, timeout=5, what="the deleted EndpointSlice to be back")
    await sandbox.kube.patch(ENDPOINTSLICES, "default", name, {"endpoints": []})
    await sandbox.eventually(slice_lists_the_instances, timeout=5, what="the emptied EndpointSlice to be refilled")
    await sandbox.kube.patch(SERVICES, "default", name, {"metadata": {"labels": {ADAPTER_LABEL: None}}})
    await sandbox.eventually(service_is_ours, timeout=5, what="the Service's label to be back")

    logged = [e.payload for e in await running.store.read_all(limit=10_000)]
    restored = [(e.kind, e.change) for e in logged if isinstance(e, OwnedObjectRestored)]
    assert restored == [("Service", "deleted"), ("EndpointSlice", "deleted"), ("EndpointSlice", "edited"),
                        ("Service", "edited")]  # fmt: skip
    warnings = [e for e in await sandbox.events() if e["reason"] == "OwnedObjectRestored"]
    assert warnings and all(e["type"] == "Warning" for e in warnings)
    assert any("EndpointSlice default/qwen-code-lora was edited by someone else" in e["message"] for e in warnings)
    assert (await sandbox.adapter())["status"]["phase"] == "Running"


def addresses(endpoint_slice: dict[str, Any]) -> list[str]:
    return sorted(address for e in endpoint_slice.get("endpoints") or [] for address in e["addresses"])
