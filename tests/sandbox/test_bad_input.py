"""Contract: bad input gets the real server's status code and reason, and never changes the store.

Malformed JSON, bodies of the wrong shape or kind, unknown resources, wrong content types, names that are not
DNS names, a namespace that contradicts the URL, and bodies over the 3 MiB limit.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Kube


async def assert_store_unchanged(kube: Kube, before: str) -> None:
    listed = await kube.get(kube.ma())
    assert [i["metadata"]["resourceVersion"] for i in listed.body["items"]] == [before]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b'{"metadata": {"name": "a"', id="truncated"),
        pytest.param(b"not json at all", id="garbage"),
        pytest.param(b"", id="empty"),
    ],
)
async def test_malformed_json_is_a_bad_request(kube: Kube, data: bytes) -> None:
    existing = await kube.create(kube.ma(), kube.adapter("existing"))
    response = await kube.request("POST", kube.ma(), data=data)
    assert (response.status, response.reason) == (400, "BadRequest"), response
    core = await kube.request("POST", kube.core("pods"), data=data)
    assert (core.status, core.reason) == (400, "BadRequest"), core
    await assert_store_unchanged(kube, existing["metadata"]["resourceVersion"])


async def test_malformed_json_in_a_json_patch_is_a_bad_request(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    response = await kube.request("PATCH", kube.ma("a"), data=b'[{"op": ', content_type="application/json-patch+json")
    assert (response.status, response.reason) == (400, "BadRequest"), response


async def test_malformed_json_in_a_merge_patch_is_a_bare_internal_error(kube: Kube) -> None:
    # v1.20 passes the merge-patch library's error through as a 500 without a reason
    await kube.create(kube.ma(), kube.adapter("a"))
    response = await kube.request("PATCH", kube.ma("a"), data=b'{"spec": ', content_type="application/merge-patch+json")
    assert response.status == 500, response
    assert response.body["message"] == "Invalid JSON Patch" and "reason" not in response.body


async def test_a_body_that_is_not_an_object_is_a_bad_request(kube: Kube) -> None:
    response = await kube.post(kube.ma(), [kube.adapter("a")])
    assert (response.status, response.reason) == (400, "BadRequest"), response


async def test_a_custom_resource_body_of_another_kind_is_invalid(kube: Kube) -> None:
    body = kube.adapter("a")
    body["kind"] = "Pod"
    response = await kube.post(kube.ma(), body)
    assert (response.status, response.reason) == (422, "Invalid"), response
    assert (
        response.body["message"]
        == 'Pod.model.aibrix.ai "a" is invalid: kind: Invalid value: "Pod": must be ModelAdapter'
    )


async def test_a_built_in_body_of_another_kind_is_a_bad_request(kube: Kube) -> None:
    body = kube.pod("p")
    body["kind"] = "Service"
    response = await kube.post(kube.core("pods"), body)
    assert (response.status, response.reason) == (400, "BadRequest"), response
    assert response.body["message"].startswith('Service in version "v1" cannot be handled as a Pod')


async def test_a_body_of_another_api_version_is_a_bad_request(kube: Kube) -> None:
    body = kube.adapter("a")
    body["apiVersion"] = "model.aibrix.ai/v9"
    response = await kube.post(kube.ma(), body)
    assert (response.status, response.reason) == (400, "BadRequest"), response


async def test_an_unknown_resource_in_a_built_in_group_is_not_found(kube: Kube) -> None:
    for path in (kube.core("widgets"), "/api/v1/widgets", kube.path("/apis/coordination.k8s.io/v1", "widgets")):
        response = await kube.get(path)
        assert (response.status, response.reason) == (404, "NotFound"), (path, response)
        assert response.body["message"] == "the server could not find the requested resource"


async def test_an_unknown_resource_in_a_custom_group_or_an_unknown_group_is_a_plain_404(kube: Kube) -> None:
    for path in (
        kube.path("/apis/model.aibrix.ai/v1alpha1", "widgets"),
        "/apis/model.aibrix.ai/v1alpha1/widgets",
        "/apis/nothing.example.com/v1/namespaces/default/widgets",
    ):
        response = await kube.get(path)
        assert (response.status, response.body) == (404, "404 page not found\n"), path


async def test_an_unknown_subresource_is_not_found(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    response = await kube.get(kube.ma("a", "scale"))
    assert (response.status, response.reason) == (404, "NotFound")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_a_body_in_an_unknown_content_type_is_unsupported_media_type(kube: Kube, content_type: str) -> None:
    response = await kube.request(
        "POST", kube.ma(), data=json.dumps(kube.adapter("a")).encode(), content_type=content_type
    )
    assert (response.status, response.reason) == (415, "UnsupportedMediaType"), response


async def test_a_patch_sent_as_plain_json_is_unsupported_media_type(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    response = await kube.patch(kube.ma("a"), {"spec": {"replicas": 2}}, kind="application/json")
    assert (response.status, response.reason) == (415, "UnsupportedMediaType"), response


async def test_yaml_bodies_are_accepted(kube: Kube) -> None:
    text = (
        "apiVersion: model.aibrix.ai/v1alpha1\nkind: ModelAdapter\nmetadata:\n  name: from-yaml\n"
        "spec:\n  podSelector: {}\n  artifactURL: s3://b/l\n"
    )
    response = await kube.request("POST", kube.ma(), data=text.encode(), content_type="application/yaml")
    assert response.status == 201, response
    assert response.body["metadata"]["name"] == "from-yaml"


@pytest.mark.parametrize("name", ["Upper", "under_score", "-leading", "trailing-", "a" * 254])
async def test_a_custom_resource_name_that_is_not_a_dns_subdomain_is_invalid(kube: Kube, name: str) -> None:
    response = await kube.post(kube.ma(), kube.adapter(name))
    assert (response.status, response.reason) == (422, "Invalid"), response
    assert response.body["details"]["causes"][0]["field"] == "metadata.name"
    assert (await kube.get(kube.ma())).body["items"] == []


async def test_a_service_name_must_be_a_dns_1035_label(kube: Kube) -> None:
    response = await kube.post(kube.core("services"), {"metadata": {"name": "1st"}, "spec": {"ports": [{"port": 80}]}})
    assert (response.status, response.reason) == (422, "Invalid")
    cause = response.body["details"]["causes"][0]
    assert cause["field"] == "metadata.name" and "DNS-1035" in cause["message"]


async def test_a_namespace_name_must_be_a_dns_label(kube: Kube) -> None:
    response = await kube.post("/api/v1/namespaces", {"metadata": {"name": "has.dots"}})
    assert (response.status, response.reason) == (422, "Invalid")
    assert "RFC 1123 label" in response.body["details"]["causes"][0]["message"]


async def test_an_object_without_a_name_is_invalid(kube: Kube) -> None:
    body = kube.adapter("a")
    del body["metadata"]["name"]
    response = await kube.post(kube.ma(), body)
    assert (response.status, response.reason) == (422, "Invalid"), response
    assert response.body["details"]["causes"][0]["field"] == "metadata.name"


async def test_a_label_value_that_is_not_valid_is_invalid(kube: Kube) -> None:
    body = kube.adapter("a")
    body["metadata"]["labels"] = {"tier": "not valid!"}
    response = await kube.post(kube.ma(), body)
    assert (response.status, response.reason) == (422, "Invalid")
    assert response.body["details"]["causes"][0]["field"] == "metadata.labels"


async def test_a_body_namespace_that_contradicts_the_url_is_a_bad_request(kube: Kube) -> None:
    body = kube.adapter("a")
    body["metadata"]["namespace"] = "somewhere-else"
    response = await kube.post(kube.ma(), body)
    assert (response.status, response.reason) == (400, "BadRequest")
    assert response.body["message"] == (
        "the namespace of the provided object does not match the namespace sent on the request"
    )


async def test_a_body_name_that_contradicts_the_url_is_a_bad_request(kube: Kube) -> None:
    created = await kube.create(kube.ma(), kube.adapter("a"))
    body = dict(created, metadata={**created["metadata"], "name": "b"})
    response = await kube.put(kube.ma("a"), body)
    assert (response.status, response.reason) == (400, "BadRequest")
    assert response.body["message"] == "the name of the object (b) does not match the name on the URL (a)"


async def test_a_body_over_three_mebibytes_is_request_entity_too_large(kube: Kube) -> None:
    existing = await kube.create(kube.ma(), kube.adapter("existing"))
    body = kube.adapter("big", additionalConfig={"blob": "x" * (4 * 1024 * 1024)})
    response = await kube.post(kube.ma(), body)
    assert (response.status, response.reason) == (413, "RequestEntityTooLarge"), response
    await assert_store_unchanged(kube, existing["metadata"]["resourceVersion"])


async def test_an_object_with_a_resource_version_cannot_be_created(kube: Kube) -> None:
    body = kube.adapter("a")
    body["metadata"]["resourceVersion"] = "12"
    response = await kube.post(kube.ma(), body)
    assert response.status == 500, response  # v1.20's storage layer refuses it as an internal error
    assert response.body["message"] == "resourceVersion should not be set on objects to be created"
    assert (await kube.get(kube.ma("a"))).status == 404


async def test_an_invalid_finalizer_name_is_invalid(kube: Kube) -> None:
    body = kube.adapter("a")
    body["metadata"]["finalizers"] = ["not a finalizer"]
    response = await kube.post(kube.ma(), body)
    assert (response.status, response.reason) == (422, "Invalid")
    assert [c["field"] for c in response.body["details"]["causes"]] == ["metadata.finalizers"]
    pod = kube.pod("p")
    pod["metadata"]["finalizers"] = ["not a finalizer", "unqualified"]
    core = await kube.post(kube.core("pods"), pod)
    assert [c["field"] for c in core.body["details"]["causes"]] == [
        "metadata.finalizers",
        "metadata.finalizers[0]",
        "metadata.finalizers[1]",
    ]


async def test_a_post_to_a_pod_url_is_method_not_allowed(kube: Kube) -> None:
    await kube.create(kube.core("pods"), kube.pod("p"))
    response = await kube.post(kube.core("pods", "p"), kube.pod("p"))
    assert (response.status, response.reason) == (405, "MethodNotAllowed"), response


async def test_a_post_to_a_custom_resource_url_creates_in_the_collection(kube: Kube) -> None:
    response = await kube.post(kube.ma("ignored"), kube.adapter("a"))
    assert response.status == 201, response
    assert response.body["metadata"]["name"] == "a"


async def test_a_request_with_a_wrong_token_is_unauthorized(kube: Kube) -> None:
    async with kube.session.get(kube.url + kube.ma(), headers={"Authorization": "Bearer wrong"}) as response:
        body = await response.json()
    assert response.status == 401
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "Unauthorized", 401)


async def test_a_malformed_continue_token_is_a_bad_request(kube: Kube) -> None:
    response = await kube.get(kube.ma(), params={"limit": "1", "continue": "garbage"})
    assert (response.status, response.reason) == (400, "BadRequest")
    assert response.body["message"].startswith("invalid continue token: ")


@pytest.mark.parametrize("watching", [False, True], ids=["list", "watch"])
async def test_a_resource_version_that_is_not_a_number_is_a_bare_internal_error(kube: Kube, watching: bool) -> None:
    params = {"resourceVersion": "abc", **({"watch": "true", "timeoutSeconds": "1"} if watching else {})}
    response = await kube.get(kube.ma(), params=params)
    assert response.status == 500 and "reason" not in response.body, response
    assert response.body["message"].startswith('resourceVersion: Invalid value: "abc"')


@pytest.mark.parametrize("param", ["limit", "timeoutSeconds"])
async def test_a_number_parameter_that_is_not_a_number_is_a_bad_request(kube: Kube, param: str) -> None:
    params = {param: "abc", **({"watch": "true"} if param == "timeoutSeconds" else {})}
    response = await kube.get(kube.ma(), params=params)
    assert (response.status, response.reason) == (400, "BadRequest")
