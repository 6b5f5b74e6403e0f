"""Contract: CRDs — established names, the group in discovery, and the schema's pruning, defaults, `enum`,
`required` and bounds applied to custom resources (422 Invalid with the field path)."""

from __future__ import annotations

import copy
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from modeladapter.operator.kube.manifests import modeladapter_crd

if TYPE_CHECKING:
    from conftest import Kube

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def widget_crd(group: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "string", "enum": ["S", "M", "L"], "default": "M"}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


async def test_the_modeladapter_crd_is_established_with_its_names_accepted(kube: Kube) -> None:
    crd = await kube.get(f"{CRDS}/modeladapters.model.aibrix.ai")
    assert crd.status == 200
    conditions = {c["type"]: c["status"] for c in crd.body["status"]["conditions"]}
    assert conditions["Established"] == "True" and conditions["NamesAccepted"] == "True"
    assert crd.body["status"]["acceptedNames"]["shortNames"] == ["ma"]
    assert crd.body["status"]["acceptedNames"]["kind"] == "ModelAdapter"


async def test_a_new_crd_is_established_and_its_group_appears_in_discovery(kube: Kube) -> None:
    group = f"g{uuid.uuid4().hex[:8]}.example.com"
    created = await kube.post(CRDS, widget_crd(group))
    assert created.status == 201, created
    try:

        async def established() -> bool:
            crd = await kube.get(f"{CRDS}/widgets.{group}")
            return any(
                c["type"] == "Established" and c["status"] == "True"
                for c in (crd.body.get("status") or {}).get("conditions") or []
            )

        await kube.eventually(established, timeout=30, what="the CRD to be established")

        async def discovered() -> Any:
            groups = await kube.get("/apis")
            return [g for g in groups.body["groups"] if g["name"] == group]

        found = await kube.eventually(discovered, timeout=30, what="the group to appear in /apis")
        assert found[0]["preferredVersion"] == {"groupVersion": f"{group}/v1", "version": "v1"}
        resources = await kube.get(f"/apis/{group}/v1")
        names = {r["name"]: r for r in resources.body["resources"]}
        assert names["widgets"]["kind"] == "Widget" and names["widgets"]["shortNames"] == ["wd"]
        assert "widgets/status" in names

        async def served() -> Any:
            made = await kube.post(
                f"/apis/{group}/v1/namespaces/{kube.namespace}/widgets",
                {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}},
            )
            return made if made.status == 201 else None

        widget = await kube.eventually(served, timeout=30, what="the new resource to be served")
        assert widget.body["spec"] == {"size": "M"}
    finally:
        await kube.delete(f"{CRDS}/widgets.{group}")
    await kube.gone(f"{CRDS}/widgets.{group}")


async def test_a_crd_whose_name_is_not_plural_dot_group_is_invalid(kube: Kube) -> None:
    crd = widget_crd("ok.example.com")
    crd["metadata"]["name"] = "wrong.example.com"
    created = await kube.post(CRDS, crd)
    assert (created.status, created.reason) == (422, "Invalid")
    assert any(c["field"] == "metadata.name" for c in created.body["details"]["causes"])


async def test_schema_defaults_fill_absent_fields(kube: Kube) -> None:
    created = await kube.create(kube.ma(), kube.adapter("a"))
    assert created["spec"]["schedulerName"] == "default"


async def test_fields_the_schema_does_not_declare_are_pruned(kube: Kube) -> None:
    body = kube.adapter("a", unknownField={"x": 1})
    body["topLevel"] = "dropped"
    created = await kube.create(kube.ma(), body)
    assert "unknownField" not in created["spec"]
    assert "topLevel" not in created


async def test_any_replicas_of_one_or_more_is_accepted(kube: Kube) -> None:
    created = await kube.create(kube.ma(), kube.adapter("a", replicas=3))
    assert created["spec"]["replicas"] == 3


@pytest.mark.parametrize(
    ("spec", "field", "reason", "message"),
    [
        pytest.param(
            {"replicas": 0},
            "spec.replicas",
            "FieldValueInvalid",
            "Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
            id="minimum",
        ),
        pytest.param(
            {"replicas": "two"},
            "spec.replicas",
            "FieldValueInvalid",
            'Invalid value: "string": spec.replicas in body must be of type integer: "string"',
            id="type",
        ),
        pytest.param({"artifactURL": None}, "spec.artifactURL", "FieldValueRequired", "Required value", id="required"),
        pytest.param(
            {"apiKeySecretRef": {"key": "token"}},
            "spec.apiKeySecretRef.name",
            "FieldValueRequired",
            "Required value",
            id="nested-required",
        ),
        pytest.param(
            {"podSelector": {"matchExpressions": [{"key": "k"}]}},
            "spec.podSelector.matchExpressions.operator",
            "FieldValueRequired",
            "Required value",
            id="required-in-a-list-item",
        ),
    ],
)
async def test_schema_violations_are_invalid_with_the_field_path(
    kube: Kube, spec: dict[str, Any], field: str, reason: str, message: str
) -> None:
    body = kube.adapter("a", **spec)
    created = await kube.post(kube.ma(), body)
    assert (created.status, created.reason) == (422, "Invalid"), created
    assert {"field": field, "reason": reason, "message": message} in created.body["details"]["causes"]
    assert created.body["details"]["kind"] == "ModelAdapter"
    assert created.body["message"].startswith('ModelAdapter.model.aibrix.ai "a" is invalid: ')


async def test_an_enum_violation_lists_the_supported_values(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    condition = {
        "type": "Ready",
        "status": "Yes",
        "reason": "R",
        "message": "m",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    patched = await kube.patch(kube.ma("a", "status"), {"status": {"conditions": [condition]}})
    assert patched.status == 422
    assert patched.body["details"]["causes"] == [
        {
            "reason": "FieldValueNotSupported",
            "field": "status.conditions.status",
            "message": 'Unsupported value: "Yes": supported values: "True", "False", "Unknown"',
        }
    ]


async def test_every_aibrix_sample_manifest_applies_unchanged(kube: Kube) -> None:
    sample = {
        "apiVersion": "model.aibrix.ai/v1alpha1",
        "kind": "ModelAdapter",
        "metadata": {
            "name": "qwen-code-lora",
            "labels": {"model.aibrix.ai/name": "qwen-code-lora", "model.aibrix.ai/port": "8000"},
        },
        "spec": {
            "baseModel": "qwen-coder-1-5b-instruct",
            "podSelector": {
                "matchLabels": {
                    "model.aibrix.ai/name": "qwen-coder-1-5b-instruct",
                    "adapter.model.aibrix.ai/enabled": "true",
                }
            },
            "artifactURL": "huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora",
            "schedulerName": "least-adapters",
            "replicas": 1,
            "additionalConfig": {"api-key": "sk-placeholder", "rank": "16"},
            "credentialsSecretRef": {"name": "creds"},
        },
    }
    created = await kube.create(kube.ma(), copy.deepcopy(sample))
    assert created["spec"] == sample["spec"]


def test_the_shipped_crd_has_the_printer_columns_and_short_name_of_the_design() -> None:
    crd = modeladapter_crd()
    version = crd["spec"]["versions"][0]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Phase",
        "Desired",
        "Ready",
        "Candidates",
        "Model Path",
        "Age",
    ]
    assert crd["spec"]["names"]["shortNames"] == ["ma"]
    assert version["subresources"] == {"status": {}}
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert {"observedGeneration", "placements", "conditions", "instances"} <= set(status)
