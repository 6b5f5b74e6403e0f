"""Contract: optimistic concurrency — 409 Conflict on a stale resourceVersion, 422 for a CR PUT without one."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Kube

STALE = (
    'Operation cannot be fulfilled on modeladapters.model.aibrix.ai "a": the object has been modified; '
    "please apply your changes to the latest version and try again"
)


async def test_put_with_a_stale_resource_version_is_a_conflict(kube: Kube) -> None:
    created = await kube.create(kube.ma(), kube.adapter("a"))
    await kube.patch(kube.ma("a"), {"spec": {"replicas": 2}})
    stale = dict(created, spec={**created["spec"], "replicas": 5})
    put = await kube.put(kube.ma("a"), stale)
    assert (put.status, put.reason) == (409, "Conflict")
    assert put.body["message"] == STALE
    assert put.body["details"] == {"name": "a", "group": "model.aibrix.ai", "kind": "modeladapters"}
    assert (await kube.get(kube.ma("a"))).body["spec"]["replicas"] == 2


async def test_a_merge_patch_carrying_a_stale_resource_version_is_a_conflict(kube: Kube) -> None:
    created = await kube.create(kube.ma(), kube.adapter("a"))
    await kube.patch(kube.ma("a"), {"spec": {"replicas": 2}})
    patch = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "spec": {"replicas": 7}}
    patched = await kube.patch(kube.ma("a"), patch)
    assert (patched.status, patched.reason) == (409, "Conflict")


async def test_a_merge_patch_carrying_the_current_resource_version_applies(kube: Kube) -> None:
    created = await kube.create(kube.ma(), kube.adapter("a"))
    patch = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "spec": {"replicas": 7}}
    patched = await kube.patch(kube.ma("a"), patch)
    assert patched.status == 200
    assert patched.body["spec"]["replicas"] == 7


async def test_put_of_a_custom_resource_without_a_resource_version_is_invalid(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    put = await kube.put(kube.ma("a"), kube.adapter("a", replicas=3))
    assert (put.status, put.reason) == (422, "Invalid")
    assert put.body["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "field": "metadata.resourceVersion",
            "message": "Invalid value: 0x0: must be specified for an update",
        }
    ]


async def test_put_of_a_pod_without_a_resource_version_is_an_unconditional_update(kube: Kube) -> None:
    created = await kube.create(kube.core("pods"), kube.pod("p"))
    body = dict(created, metadata={**created["metadata"], "labels": {"a": "b"}})
    del body["metadata"]["resourceVersion"]
    put = await kube.put(kube.core("pods", "p"), body)
    assert put.status == 200, put
    assert put.body["metadata"]["labels"] == {"a": "b"}


async def test_put_of_a_lease_without_a_resource_version_is_invalid(kube: Kube) -> None:
    path = kube.path("/apis/coordination.k8s.io/v1", "leases")
    await kube.create(path, {"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}})
    put = await kube.put(f"{path}/l", {"metadata": {"name": "l"}, "spec": {"holderIdentity": "b"}})
    assert (put.status, put.reason) == (422, "Invalid")
    assert put.body["message"] == (
        'leases.coordination.k8s.io "l" is invalid: metadata.resourceVersion: Invalid '
        "value: 0x0: must be specified for an update"
    )


async def test_status_writes_check_the_resource_version_too(kube: Kube) -> None:
    created = await kube.create(kube.ma(), kube.adapter("a"))
    await kube.patch(kube.ma("a", "status"), {"status": {"phase": "Pending"}})
    stale = dict(created, status={"phase": "Running"})
    put = await kube.put(kube.ma("a", "status"), stale)
    assert (put.status, put.reason) == (409, "Conflict")
