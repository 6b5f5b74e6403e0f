"""Contract: DELETE — finalizers, an immutable deletionTimestamp, repeated deletes, preconditions, and pods'
graceful deletion (which is what "terminating" means for the operator)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Kube

FINALIZER = "adapter.model.aibrix.ai/finalizer"


async def with_finalizer(kube: Kube, name: str = "a") -> dict[str, object]:
    body = kube.adapter(name)
    body["metadata"]["finalizers"] = [FINALIZER]
    return await kube.create(kube.ma(), body)


async def test_deleting_without_finalizers_removes_the_object_at_once(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    deleted = await kube.delete(kube.ma("a"))
    assert deleted.status == 200
    assert deleted.body["kind"] == "Status" and deleted.body["status"] == "Success"
    assert deleted.body["details"]["name"] == "a"
    assert (await kube.get(kube.ma("a"))).status == 404


async def test_deleting_with_a_finalizer_sets_a_deletion_timestamp_and_keeps_the_object(kube: Kube) -> None:
    created = await with_finalizer(kube)
    deleted = await kube.delete(kube.ma("a"))
    assert deleted.status == 200
    meta = deleted.body["metadata"]
    assert meta["deletionTimestamp"] and meta["deletionGracePeriodSeconds"] == 0
    assert int(meta["resourceVersion"]) > int(created["metadata"]["resourceVersion"])  # type: ignore[index]
    assert (await kube.get(kube.ma("a"))).body["metadata"]["deletionTimestamp"] == meta["deletionTimestamp"]


async def test_a_repeated_delete_returns_the_object_unchanged(kube: Kube) -> None:
    await with_finalizer(kube)
    first = await kube.delete(kube.ma("a"))
    second = await kube.delete(kube.ma("a"))
    assert second.status == 200
    assert second.body["metadata"]["resourceVersion"] == first.body["metadata"]["resourceVersion"]
    assert second.body["metadata"]["deletionTimestamp"] == first.body["metadata"]["deletionTimestamp"]


async def test_the_deletion_timestamp_cannot_be_changed_or_removed(kube: Kube) -> None:
    await with_finalizer(kube)
    first = await kube.delete(kube.ma("a"))
    stamp = first.body["metadata"]["deletionTimestamp"]
    changed = await kube.patch(kube.ma("a"), {"metadata": {"deletionTimestamp": "2030-01-01T00:00:00Z"}})
    assert changed.status == 200
    assert changed.body["metadata"]["deletionTimestamp"] == stamp
    removed = await kube.patch(kube.ma("a"), {"metadata": {"deletionTimestamp": None}})
    assert removed.body["metadata"]["deletionTimestamp"] == stamp


async def test_no_finalizer_can_be_added_once_deletion_started(kube: Kube) -> None:
    await with_finalizer(kube)
    await kube.delete(kube.ma("a"))
    added = await kube.patch(kube.ma("a"), {"metadata": {"finalizers": [FINALIZER, "example.com/other"]}})
    assert (added.status, added.reason) == (422, "Invalid")
    cause = added.body["details"]["causes"][0]
    assert (cause["field"], cause["reason"]) == ("metadata.finalizers", "FieldValueForbidden")
    assert cause["message"] == (
        "Forbidden: no new finalizers can be added if the object is being deleted, found "
        'new finalizers []string{"example.com/other"}'
    )


async def test_removing_the_last_finalizer_deletes_the_object(kube: Kube) -> None:
    await with_finalizer(kube)
    await kube.delete(kube.ma("a"))
    released = await kube.patch(kube.ma("a"), {"metadata": {"finalizers": None}})
    assert released.status == 200
    assert (await kube.get(kube.ma("a"))).status == 404


async def test_spec_and_status_stay_writable_while_finalizers_are_pending(kube: Kube) -> None:
    await with_finalizer(kube)
    await kube.delete(kube.ma("a"))
    status = await kube.patch(kube.ma("a", "status"), {"status": {"phase": "Terminating"}})
    assert status.status == 200
    assert status.body["status"]["phase"] == "Terminating"


async def test_a_uid_precondition_that_does_not_match_is_a_conflict(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    deleted = await kube.delete(kube.ma("a"), {"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}})
    assert (deleted.status, deleted.reason) == (409, "Conflict")
    assert (await kube.get(kube.ma("a"))).status == 200


async def test_a_resource_version_precondition_is_honoured(kube: Kube) -> None:
    created = await kube.create(kube.ma(), kube.adapter("a"))
    await kube.patch(kube.ma("a"), {"spec": {"replicas": 2}})
    stale = await kube.delete(
        kube.ma("a"), {"preconditions": {"resourceVersion": created["metadata"]["resourceVersion"]}}
    )
    assert (stale.status, stale.reason) == (409, "Conflict")


async def test_foreground_deletion_adds_the_foreground_finalizer(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    deleted = await kube.delete(kube.ma("a"), {"propagationPolicy": "Foreground"})
    assert deleted.status == 200
    assert "foregroundDeletion" in deleted.body["metadata"]["finalizers"]
    await kube.gone(kube.ma("a"))  # the garbage collector finishes it: nothing depends on it


async def test_deleting_a_missing_object_is_not_found(kube: Kube) -> None:
    deleted = await kube.delete(kube.ma("nope"))
    assert (deleted.status, deleted.reason) == (404, "NotFound")


async def test_a_pod_without_a_node_is_deleted_at_once(kube: Kube) -> None:
    await kube.create(kube.core("pods"), kube.pod("p"))
    deleted = await kube.delete(kube.core("pods", "p"))
    assert deleted.status == 200
    assert deleted.body["kind"] == "Pod"
    assert deleted.body["metadata"]["deletionGracePeriodSeconds"] == 0
    assert (await kube.get(kube.core("pods", "p"))).status == 404


async def test_a_pod_on_a_node_terminates_gracefully_and_stays_until_forced(kube: Kube) -> None:
    await kube.create(kube.core("pods"), kube.pod("p", node="node-1"))
    graceful = await kube.delete(kube.core("pods", "p"))
    assert graceful.status == 200
    assert graceful.body["metadata"]["deletionGracePeriodSeconds"] == 30
    still = await kube.get(kube.core("pods", "p"))
    assert still.status == 200 and still.body["metadata"]["deletionTimestamp"]
    shorter = await kube.delete(kube.core("pods", "p"), {"gracePeriodSeconds": 5})
    assert shorter.body["metadata"]["deletionGracePeriodSeconds"] == 5
    forced = await kube.delete(kube.core("pods", "p"), {"gracePeriodSeconds": 0})
    assert forced.status == 200
    assert (await kube.get(kube.core("pods", "p"))).status == 404


async def test_a_delete_of_a_service_answers_with_a_success_status(kube: Kube) -> None:
    await kube.create(kube.core("services"), {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}})
    deleted = await kube.delete(kube.core("services", "svc"))
    assert deleted.status == 200
    assert (deleted.body["kind"], deleted.body["status"], deleted.body["details"]["kind"]) == (
        "Status",
        "Success",
        "services",
    )


async def test_deleting_a_namespace_deletes_what_is_in_it(kube: Kube) -> None:
    other = f"{kube.namespace}-x"
    await kube.create("/api/v1/namespaces", {"metadata": {"name": other}})
    path = f"/apis/model.aibrix.ai/v1alpha1/namespaces/{other}/modeladapters"
    held = kube.adapter("a")
    held["metadata"]["finalizers"] = [FINALIZER]  # keeps the namespace terminating until released
    await kube.create(path, held)
    deleted = await kube.delete(f"/api/v1/namespaces/{other}")
    assert deleted.status == 200
    assert deleted.body["status"]["phase"] == "Terminating"
    attempts = iter(range(1000))

    async def refused() -> bool:
        # the real admission plugin reads namespaces from a cache that may lag the DELETE by a moment
        response = await kube.post(path, kube.adapter(f"b{next(attempts)}"))
        assert response.status in (201, 403), response
        return (response.status, response.reason) == (403, "Forbidden")

    await kube.eventually(refused, timeout=10, what="creation in a terminating namespace to be refused")

    async def marked_for_deletion() -> bool:
        return bool((await kube.get(f"{path}/a")).body["metadata"].get("deletionTimestamp"))

    await kube.eventually(marked_for_deletion, what="the namespace controller to delete the adapter")
    assert (await kube.get(f"/api/v1/namespaces/{other}")).body["status"]["phase"] == "Terminating"
    await kube.patch(f"{path}/a", {"metadata": {"finalizers": None}})
    await kube.gone(f"{path}/a")
    await kube.gone(f"/api/v1/namespaces/{other}")


async def test_creating_in_a_missing_namespace_is_not_found(kube: Kube) -> None:
    created = await kube.post("/apis/model.aibrix.ai/v1alpha1/namespaces/no-such-ns/modeladapters", kube.adapter("a"))
    assert (created.status, created.reason) == (404, "NotFound")
    assert created.body["message"] == 'namespaces "no-such-ns" not found'


async def test_a_namespace_waits_for_its_terminating_pods_which_wait_for_a_kubelet(kube: Kube) -> None:
    other = f"{kube.namespace}-p"
    await kube.create("/api/v1/namespaces", {"metadata": {"name": other}})
    pod_path = f"/api/v1/namespaces/{other}/pods/engine"
    await kube.create(f"/api/v1/namespaces/{other}/pods", kube.pod("engine", node="node-1"))
    await kube.delete(f"/api/v1/namespaces/{other}")

    async def terminating() -> bool:
        return bool((await kube.get(pod_path)).body["metadata"].get("deletionTimestamp"))

    await kube.eventually(terminating, what="the namespace controller to delete the pod")
    pod = await kube.get(pod_path)
    assert pod.body["metadata"]["deletionGracePeriodSeconds"] == 30
    assert (await kube.get(f"/api/v1/namespaces/{other}")).body["status"]["phase"] == "Terminating"
    await kube.delete(pod_path, {"gracePeriodSeconds": 0})  # what a kubelet would do
    await kube.gone(pod_path)
