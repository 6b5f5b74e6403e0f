"""Contract: the status subresource splits writes in both directions.

Writes to the main resource drop `.status` changes; writes to `/status` drop everything but `.status`; neither
changes `generation` unless the spec changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Kube


async def test_create_drops_the_status(kube: Kube) -> None:
    body = kube.adapter("a")
    body["status"] = {"phase": "Running"}
    created = await kube.create(kube.ma(), body)
    assert "status" not in created


async def test_a_patch_of_the_main_resource_ignores_status(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    patched = await kube.patch(kube.ma("a"), {"status": {"phase": "Running"}, "spec": {"replicas": 2}})
    assert patched.body["spec"]["replicas"] == 2
    assert "status" not in patched.body


async def test_a_status_patch_ignores_spec_and_metadata(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    patched = await kube.patch(
        kube.ma("a", "status"),
        {
            "status": {"phase": "Running", "readyReplicas": 1},
            "spec": {"replicas": 9},
            "metadata": {"labels": {"x": "1"}},
        },
    )
    assert patched.status == 200, patched
    assert patched.body["status"] == {"phase": "Running", "readyReplicas": 1}
    assert "replicas" not in patched.body["spec"]
    assert "labels" not in patched.body["metadata"]
    assert patched.body["metadata"]["generation"] == 1


async def test_a_status_put_replaces_only_the_status(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    first = await kube.patch(kube.ma("a", "status"), {"status": {"phase": "Pending", "candidates": 2}})
    body = dict(first.body, status={"phase": "Running"}, spec={**first.body["spec"], "replicas": 4})
    put = await kube.put(kube.ma("a", "status"), body)
    assert put.status == 200, put
    assert put.body["status"] == {"phase": "Running"}
    assert "replicas" not in put.body["spec"]


async def test_get_of_the_status_subresource_returns_the_whole_object(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    got = await kube.get(kube.ma("a", "status"))
    assert got.status == 200
    assert got.body["kind"] == "ModelAdapter" and got.body["spec"]["artifactURL"]


async def test_status_is_validated_against_the_schema(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    bad = {
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "Maybe",
                    "reason": "R",
                    "message": "m",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ]
        }
    }
    patched = await kube.patch(kube.ma("a", "status"), bad)
    assert (patched.status, patched.reason) == (422, "Invalid")
    # go-openapi in v1.20 names an array item's field without its index
    assert patched.body["details"]["causes"][0]["field"] == "status.conditions.status"
    assert patched.body["details"]["causes"][0]["reason"] == "FieldValueNotSupported"


async def test_pod_status_writes_ignore_the_spec(kube: Kube) -> None:
    await kube.create(kube.core("pods"), kube.pod("p"))
    patched = await kube.patch(
        kube.core("pods", "p", "status"), {"spec": {"activeDeadlineSeconds": 5}, "status": {"phase": "Running"}}
    )
    assert patched.status == 200, patched
    assert patched.body["status"]["phase"] == "Running"
    assert "activeDeadlineSeconds" not in patched.body["spec"]


async def test_a_pod_patch_of_the_main_resource_ignores_status(kube: Kube) -> None:
    await kube.create(kube.core("pods"), kube.pod("p"))
    patched = await kube.patch(
        kube.core("pods", "p"), {"metadata": {"labels": {"a": "b"}}, "status": {"phase": "Running"}}
    )
    assert patched.body["metadata"]["labels"] == {"a": "b"}
    assert patched.body["status"]["phase"] == "Pending"


async def test_status_fields_the_schema_does_not_declare_are_pruned(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    patched = await kube.patch(kube.ma("a", "status"), {"status": {"phase": "Running", "bogus": 1}})
    assert patched.status == 200
    assert patched.body["status"] == {"phase": "Running"}
