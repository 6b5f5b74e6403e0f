"""Contract: what kubectl reads before it does anything — `/version`, discovery, `/openapi/v2` — and the
server-side Table it prints (`kubectl get`), with the ModelAdapter CRD's printer columns."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Kube

TABLE = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)


async def test_version_is_v1_20_2(kube: Kube) -> None:
    version = await kube.get("/version")
    assert (version.body["major"], version.body["minor"], version.body["gitVersion"]) == ("1", "20", "v1.20.2")


async def test_the_core_api_lists_version_v1(kube: Kube) -> None:
    api = await kube.get("/api")
    assert (api.body["kind"], api.body["versions"]) == ("APIVersions", ["v1"])


async def test_the_group_list_names_every_group_the_operator_uses(kube: Kube) -> None:
    groups = await kube.get("/apis")
    assert groups.body["kind"] == "APIGroupList"
    by_name = {g["name"]: g for g in groups.body["groups"]}
    for name in ("model.aibrix.ai", "coordination.k8s.io", "events.k8s.io", "apiextensions.k8s.io"):
        assert name in by_name, name
    assert by_name["model.aibrix.ai"]["preferredVersion"] == {
        "groupVersion": "model.aibrix.ai/v1alpha1",
        "version": "v1alpha1",
    }
    one = await kube.get("/apis/model.aibrix.ai")
    assert (one.body["kind"], one.body["name"]) == ("APIGroup", "model.aibrix.ai")


async def test_the_core_resource_list_says_group_version_v1(kube: Kube) -> None:
    listing = await kube.get("/api/v1")
    assert (listing.body["kind"], listing.body["groupVersion"]) == ("APIResourceList", "v1")
    resources = {r["name"]: r for r in listing.body["resources"]}
    assert resources["pods"]["namespaced"] and resources["pods"]["kind"] == "Pod"
    assert "po" in resources["pods"]["shortNames"] and "pods/status" in resources
    assert resources["namespaces"]["namespaced"] is False and resources["namespaces"]["shortNames"] == ["ns"]
    assert resources["services"]["shortNames"] == ["svc"]
    assert {"create", "delete", "get", "list", "patch", "update", "watch"} <= set(resources["events"]["verbs"])


async def test_the_modeladapter_resource_list_has_its_names_and_status_subresource(kube: Kube) -> None:
    listing = await kube.get("/apis/model.aibrix.ai/v1alpha1")
    resources = {r["name"]: r for r in listing.body["resources"]}
    ma = resources["modeladapters"]
    assert (ma["kind"], ma["singularName"], ma["namespaced"], ma["shortNames"]) == (
        "ModelAdapter",
        "modeladapter",
        True,
        ["ma"],
    )
    assert set(ma["verbs"]) == {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
    assert set(resources["modeladapters/status"]["verbs"]) == {"get", "patch", "update"}


async def test_openapi_v2_is_served_as_protobuf_for_kubectl(kube: Kube) -> None:
    accept = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
    async with kube.session.get(kube.url + "/openapi/v2", headers={"Accept": accept}) as response:
        body = await response.read()
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert body.startswith(b"\x0a\x032.0")  # field 1 (swagger) = "2.0"


async def test_openapi_v2_is_served_as_json(kube: Kube) -> None:
    document = await kube.get("/openapi/v2", headers={"Accept": "application/json"})
    assert document.status == 200
    assert document.body["swagger"] == "2.0"


async def test_a_table_of_modeladapters_has_the_crd_printer_columns(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a", replicas=2))
    await kube.patch(
        kube.ma("a", "status"),
        {"status": {"phase": "Running", "desiredReplicas": 2, "readyReplicas": 1, "candidates": 3}},
    )
    listed = await kube.get(kube.ma(), headers={"Accept": TABLE})
    assert (listed.body["kind"], listed.body["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    columns = [(c["name"], c["type"]) for c in listed.body["columnDefinitions"]]
    assert columns == [
        ("Name", "string"),
        ("Phase", "string"),
        ("Desired", "integer"),
        ("Ready", "integer"),
        ("Candidates", "integer"),
        ("Model Path", "string"),
        ("Age", "date"),
    ]
    row = listed.body["rows"][0]
    assert row["cells"][:6] == ["a", "Running", 2, 1, 3, "huggingface://org/repo"]
    assert row["cells"][6].endswith("s")
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["name"] == "a"


async def test_a_table_cell_for_a_missing_field_is_null(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    listed = await kube.get(kube.ma(), headers={"Accept": TABLE})
    assert listed.body["rows"][0]["cells"][1:5] == [None, None, None, None]


async def test_a_single_object_can_be_read_as_a_table(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    got = await kube.get(kube.ma("a"), headers={"Accept": TABLE})
    assert got.body["kind"] == "Table" and len(got.body["rows"]) == 1


async def test_a_table_of_pods_has_the_pod_columns(kube: Kube) -> None:
    await kube.create(kube.core("pods"), kube.pod("p"))
    listed = await kube.get(kube.core("pods"), headers={"Accept": TABLE})
    names = [c["name"] for c in listed.body["columnDefinitions"]]
    assert names == ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]
    assert listed.body["rows"][0]["cells"][:4] == ["p", "0/1", "Pending", 0]
