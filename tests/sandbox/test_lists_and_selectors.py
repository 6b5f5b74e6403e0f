"""Contract: LIST — `kind: XList`, label selectors with every operator, field selectors, limit and continue."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Kube


async def seed_labelled(kube: Kube) -> None:
    for name, labels in {
        "a": {"tier": "gold", "zone": "1"},
        "b": {"tier": "silver", "zone": "2"},
        "c": {"tier": "bronze"},
        "d": {},
    }.items():
        body = kube.adapter(name)
        body["metadata"]["labels"] = labels
        await kube.create(kube.ma(), body)


async def test_a_list_has_its_kind_api_version_and_resource_version(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    listed = await kube.get(kube.ma())
    assert listed.status == 200
    assert listed.body["kind"] == "ModelAdapterList"
    assert listed.body["apiVersion"] == "model.aibrix.ai/v1alpha1"
    assert int(listed.body["metadata"]["resourceVersion"]) > 0
    assert [i["metadata"]["name"] for i in listed.body["items"]] == ["a"]
    assert listed.body["items"][0]["kind"] == "ModelAdapter"


async def test_core_lists_are_kind_podlist_with_api_version_v1(kube: Kube) -> None:
    listed = await kube.get(kube.core("pods"))
    assert (listed.body["kind"], listed.body["apiVersion"], listed.body["items"]) == ("PodList", "v1", [])


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param("tier=gold", ["a"], id="equals"),
        pytest.param("tier==silver", ["b"], id="double-equals"),
        pytest.param("tier!=gold", ["b", "c", "d"], id="not-equals-includes-missing-key"),
        pytest.param("tier in (gold,silver)", ["a", "b"], id="in"),
        pytest.param("tier notin (gold,silver)", ["c", "d"], id="notin-includes-missing-key"),
        pytest.param("zone", ["a", "b"], id="exists"),
        pytest.param("!zone", ["c", "d"], id="does-not-exist"),
        pytest.param("tier,zone=2", ["b"], id="and"),
        pytest.param("zone>1", ["b"], id="greater-than"),
    ],
)
async def test_label_selectors(kube: Kube, selector: str, expected: list[str]) -> None:
    await seed_labelled(kube)
    listed = await kube.get(kube.ma(), params={"labelSelector": selector})
    assert listed.status == 200, listed
    assert sorted(i["metadata"]["name"] for i in listed.body["items"]) == expected


async def test_a_malformed_label_selector_is_a_bad_request(kube: Kube) -> None:
    listed = await kube.get(kube.ma(), params={"labelSelector": "tier in (gold"})
    assert (listed.status, listed.reason) == (400, "BadRequest")


async def test_field_selectors_on_name_and_namespace(kube: Kube) -> None:
    await seed_labelled(kube)
    by_name = await kube.get(kube.ma(), params={"fieldSelector": "metadata.name=b"})
    assert [i["metadata"]["name"] for i in by_name.body["items"]] == ["b"]
    not_name = await kube.get(kube.ma(), params={"fieldSelector": "metadata.name!=b"})
    assert sorted(i["metadata"]["name"] for i in not_name.body["items"]) == ["a", "c", "d"]
    everywhere = await kube.get(
        "/apis/model.aibrix.ai/v1alpha1/modeladapters", params={"fieldSelector": f"metadata.namespace={kube.namespace}"}
    )
    assert sorted(i["metadata"]["name"] for i in everywhere.body["items"]) == ["a", "b", "c", "d"]


async def test_an_unsupported_field_selector_is_a_bad_request(kube: Kube) -> None:
    listed = await kube.get(kube.ma(), params={"fieldSelector": "spec.artifactURL=x"})
    assert (listed.status, listed.reason) == (400, "BadRequest")


async def test_limit_and_continue_page_through_a_consistent_list(kube: Kube) -> None:
    await seed_labelled(kube)
    first = await kube.get(kube.ma(), params={"limit": "3"})
    assert [i["metadata"]["name"] for i in first.body["items"]] == ["a", "b", "c"]
    token = first.body["metadata"]["continue"]
    assert first.body["metadata"]["remainingItemCount"] == 1
    await kube.create(kube.ma(), kube.adapter("e"))  # after the first page: not in this list
    rest = await kube.get(kube.ma(), params={"limit": "3", "continue": token})
    assert [i["metadata"]["name"] for i in rest.body["items"]] == ["d"]
    assert "continue" not in rest.body["metadata"] or not rest.body["metadata"]["continue"]
    assert rest.body["metadata"]["resourceVersion"] == first.body["metadata"]["resourceVersion"]


async def test_listing_in_a_namespace_that_does_not_exist_is_an_empty_list(kube: Kube) -> None:
    listed = await kube.get("/apis/model.aibrix.ai/v1alpha1/namespaces/no-such-namespace/modeladapters")
    assert listed.status == 200
    assert listed.body["items"] == []
