"""Contract: CREATE, PUT and the three PATCH flavours, and which flavour each kind accepts.

Custom resources take merge-patch and JSON-patch; strategic-merge-patch is 415 for them (built-ins only).
kubernetes-asyncio's CustomObjectsApi sends a dict body as `json-patch+json` unless told otherwise: the server
refuses it with 400, which is why the operator passes `_content_type="application/merge-patch+json"`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Kube


async def test_creating_an_existing_name_is_already_exists(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    again = await kube.post(kube.ma(), kube.adapter("a"))
    assert (again.status, again.reason) == (409, "AlreadyExists")
    assert again.body["message"] == 'modeladapters.model.aibrix.ai "a" already exists'
    assert again.body["details"] == {"name": "a", "group": "model.aibrix.ai", "kind": "modeladapters"}


async def test_getting_a_missing_object_is_not_found_with_details(kube: Kube) -> None:
    missing = await kube.get(kube.ma("nope"))
    assert (missing.status, missing.reason) == (404, "NotFound")
    assert missing.body["message"] == 'modeladapters.model.aibrix.ai "nope" not found'
    assert missing.body["details"] == {"name": "nope", "group": "model.aibrix.ai", "kind": "modeladapters"}
    core = await kube.get(kube.core("pods", "nope"))
    assert core.body["details"] == {"name": "nope", "kind": "pods"}


async def test_merge_patch_merges_objects_replaces_lists_and_deletes_with_null(kube: Kube) -> None:
    body = kube.adapter("a", additionalConfig={"rank": "8", "alpha": "16"})
    body["metadata"]["finalizers"] = ["example.com/a", "example.com/b"]
    await kube.create(kube.ma(), body)
    patched = await kube.patch(
        kube.ma("a"),
        {"metadata": {"finalizers": ["example.com/c"]}, "spec": {"additionalConfig": {"rank": None, "timeout": "1s"}}},
    )
    assert patched.status == 200, patched
    assert patched.body["metadata"]["finalizers"] == ["example.com/c"]
    assert patched.body["spec"]["additionalConfig"] == {"alpha": "16", "timeout": "1s"}
    await kube.patch(kube.ma("a"), {"metadata": {"finalizers": None}})


async def test_json_patch_applies_operations_in_order(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    ops = [
        {"op": "add", "path": "/spec/replicas", "value": 2},
        {"op": "replace", "path": "/spec/artifactURL", "value": "s3://b/l"},
        {"op": "add", "path": "/metadata/labels", "value": {"x": "1"}},
    ]
    patched = await kube.patch(kube.ma("a"), ops, kind="json")
    assert patched.status == 200, patched
    assert (patched.body["spec"]["replicas"], patched.body["spec"]["artifactURL"]) == (2, "s3://b/l")
    assert patched.body["metadata"]["labels"] == {"x": "1"}


async def test_a_failed_json_patch_test_operation_is_invalid(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    ops = [{"op": "test", "path": "/spec/artifactURL", "value": "other"}, {"op": "remove", "path": "/spec"}]
    patched = await kube.patch(kube.ma("a"), ops, kind="json")
    assert (patched.status, patched.reason) == (422, "Invalid")
    assert (await kube.get(kube.ma("a"))).body["spec"]["artifactURL"] == "huggingface://org/repo"


async def test_a_json_patch_that_is_an_object_is_a_bad_request(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    patched = await kube.patch(kube.ma("a"), {"spec": {"replicas": 2}}, kind="json")
    assert (patched.status, patched.reason) == (400, "BadRequest")


async def test_removing_a_missing_path_with_json_patch_is_invalid(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    patched = await kube.patch(kube.ma("a"), [{"op": "remove", "path": "/spec/nothing"}], kind="json")
    assert (patched.status, patched.reason) == (422, "Invalid")


async def test_strategic_merge_patch_on_a_custom_resource_is_unsupported_media_type(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    patched = await kube.patch(kube.ma("a"), {"spec": {"replicas": 2}}, kind="strategic")
    assert (patched.status, patched.reason) == (415, "UnsupportedMediaType")


async def test_strategic_merge_patch_merges_service_ports_by_port(kube: Kube) -> None:
    await kube.create(
        kube.core("services"),
        {
            "metadata": {"name": "svc"},
            "spec": {"ports": [{"name": "http", "port": 8000}, {"name": "metrics", "port": 9090}]},
        },
    )
    patched = await kube.patch(
        kube.core("services", "svc"),
        {"spec": {"ports": [{"name": "http", "port": 8000, "targetPort": 8080}]}},
        kind="strategic",
    )
    assert patched.status == 200, patched
    ports = {p["port"]: p for p in patched.body["spec"]["ports"]}
    assert set(ports) == {8000, 9090}
    assert ports[8000]["targetPort"] == 8080


async def test_strategic_merge_patch_merges_pod_conditions_by_type(kube: Kube) -> None:
    await kube.create(kube.core("pods"), kube.pod("p"))
    first = {
        "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]}
    }
    await kube.patch(kube.core("pods", "p", "status"), first, kind="strategic")
    second = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    patched = await kube.patch(kube.core("pods", "p", "status"), second, kind="strategic")
    statuses = {c["type"]: c["status"] for c in patched.body["status"]["conditions"]}
    assert statuses == {"Ready": "True", "Initialized": "True"}


async def test_strategic_merge_patch_delete_directive_removes_a_list_element(kube: Kube) -> None:
    await kube.create(
        kube.core("services"),
        {
            "metadata": {"name": "svc"},
            "spec": {"ports": [{"name": "http", "port": 8000}, {"name": "metrics", "port": 9090}]},
        },
    )
    patched = await kube.patch(
        kube.core("services", "svc"), {"spec": {"ports": [{"port": 9090, "$patch": "delete"}]}}, kind="strategic"
    )
    assert [p["port"] for p in patched.body["spec"]["ports"]] == [8000]


async def test_put_replaces_the_whole_object(kube: Kube) -> None:
    created = await kube.create(kube.ma(), kube.adapter("a", replicas=2, baseModel="m"))
    replacement = kube.adapter("a")
    replacement["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    replaced = await kube.put(kube.ma("a"), replacement)
    assert replaced.status == 200, replaced
    assert "replicas" not in replaced.body["spec"] and "baseModel" not in replaced.body["spec"]
    assert replaced.body["metadata"]["generation"] == 2


async def test_put_on_a_missing_custom_resource_is_not_found(kube: Kube) -> None:
    put = await kube.put(kube.ma("nope"), kube.adapter("nope"))
    assert (put.status, put.reason) == (404, "NotFound")


async def test_put_on_a_missing_lease_creates_it(kube: Kube) -> None:
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "leader"},
        "spec": {"holderIdentity": "a"},
    }
    put = await kube.put(kube.path("/apis/coordination.k8s.io/v1", "leases", "leader"), lease)
    assert put.status == 201, put


async def test_a_dry_run_create_answers_with_the_object_and_stores_nothing(kube: Kube) -> None:
    response = await kube.post(kube.ma(), kube.adapter("a"), params={"dryRun": "All"})
    assert response.status == 201, response
    assert response.body["spec"]["schedulerName"] == "default"
    assert (await kube.get(kube.ma("a"))).status == 404


async def test_a_dry_run_patch_answers_with_the_result_and_changes_nothing(kube: Kube) -> None:
    created = await kube.create(kube.ma(), kube.adapter("a"))
    response = await kube.patch(kube.ma("a"), {"spec": {"replicas": 4}}, params={"dryRun": "All"})
    assert response.status == 200, response
    assert response.body["spec"]["replicas"] == 4
    stored = await kube.get(kube.ma("a"))
    assert "replicas" not in stored.body["spec"]
    assert stored.body["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_a_dry_run_delete_keeps_the_object(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    response = await kube.delete(kube.ma("a"), params={"dryRun": "All"})
    assert response.status == 200, response
    assert (await kube.get(kube.ma("a"))).status == 200
