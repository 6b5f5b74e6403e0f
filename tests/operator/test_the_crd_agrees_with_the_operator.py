"""The CRD's schema refuses only what the operator would refuse anyway, and describes every field.

Its closed sets are the operator's own (`modeladapter.fsm.scheduling`, `modeladapter.fsm.phases`,
`modeladapter.operator.api.spec`), its patterns accept every form the operator accepts, and `docs/api-reference.md`
is rendered from it (`python -m docs.apireference`); it must not drift from it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from docs.apireference import fields, render_reference
from modeladapter.fsm.phases import Phase, PlacementState
from modeladapter.fsm.scheduling import POLICY_NAMES
from modeladapter.operator.api.spec import ARTIFACT_SCHEMES, SELECTOR_OPERATORS, parse_spec
from modeladapter.operator.kube.manifests import modeladapter_crd

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "api-reference.md"
SAMPLES = sorted((ROOT / "tests" / "e2e" / "aibrix_samples").glob("*.yaml"))
SCHEMA = modeladapter_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
SPEC = SCHEMA["properties"]["spec"]["properties"]
STATUS = SCHEMA["properties"]["status"]["properties"]
NAME = SCHEMA["properties"]["metadata"]["properties"]["name"]


def accepted_by_schema(value: str, schema: dict[str, Any]) -> bool:
    return len(value) <= schema.get("maxLength", len(value)) and re.search(schema["pattern"], value) is not None


def adapter(name: str = "qwen-lora", **spec: Any) -> dict[str, Any]:
    body = {"podSelector": {"matchLabels": {"model.aibrix.ai/name": "base"}}, "artifactURL": "hf://org/repo", **spec}
    return {"metadata": {"name": name}, "spec": body}


def test_the_api_reference_is_current() -> None:
    assert DOCUMENT.read_text() == render_reference(), (
        "docs/api-reference.md is out of date: run `python -m docs.apireference > docs/api-reference.md`"
    )


@pytest.mark.parametrize("section", ["spec", "status"])
def test_every_field_of_spec_and_status_has_a_description(section: str) -> None:
    undescribed = [f.path for f in fields(SCHEMA["properties"][section], section) if not f.schema.get("description")]
    assert not undescribed
    assert SCHEMA["properties"][section]["description"]


def test_the_closed_sets_are_the_operators() -> None:
    assert SPEC["schedulerName"]["enum"] == ["", *POLICY_NAMES]
    operator = SPEC["podSelector"]["properties"]["matchExpressions"]["items"]["properties"]["operator"]
    assert tuple(operator["enum"]) == SELECTOR_OPERATORS
    # AIBrix's controller's own phases stay valid, so that an adapter it left behind can be taken over.
    assert STATUS["phase"]["enum"] == [*(phase.value for phase in Phase), "ResourceCreated", "Unknown", "Scaled"]
    assert STATUS["placements"]["items"]["properties"]["state"]["enum"] == [state.value for state in PlacementState]


def test_every_scheduler_name_the_schema_accepts_is_one_the_operator_accepts() -> None:
    for name in SPEC["schedulerName"]["enum"]:
        assert not hasattr(parse_spec(adapter(schedulerName=name)), "field"), name


@pytest.mark.parametrize(
    "url",
    [
        *(f"{scheme}org/repo" for scheme in ARTIFACT_SCHEMES),
        "huggingface:///org/repo",
        "hf:///org/repo",
        "/models/qwen-lora",
        "/models/with space",
    ],
)
def test_the_artifact_pattern_accepts_every_form_the_operator_accepts(url: str) -> None:
    assert not hasattr(parse_spec(adapter(artifactURL=url)), "field")
    assert accepted_by_schema(url, SPEC["artifactURL"])


@pytest.mark.parametrize(
    "url", ["ftp://models/x", "https://huggingface.co/org/repo", "relative/path", "HF://org/repo", "s3://", "s3:///k"]
)
def test_the_artifact_pattern_refuses_what_the_operator_refuses(url: str) -> None:
    assert getattr(parse_spec(adapter(artifactURL=url)), "field", None) == "spec.artifactURL"
    assert not accepted_by_schema(url, SPEC["artifactURL"])


@pytest.mark.parametrize(
    ("name", "usable"),
    [
        ("qwen-code-lora", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("9lora", False),
        ("qwen.code.lora", False),
        ("lora-", False),
    ],
)
def test_the_name_rule_is_the_operators(name: str, usable: bool) -> None:
    assert accepted_by_schema(name, NAME) is usable
    assert (not hasattr(parse_spec(adapter(name)), "field")) is usable


def test_int32_bounds_fit_the_declared_format() -> None:
    for field in ("replicas",):
        assert (SPEC[field]["format"], SPEC[field]["maximum"]) == ("int32", 2**31 - 1)
    for field in ("maxSurge", "maxUnavailable"):
        assert SPEC["updateStrategy"]["properties"][field]["maximum"] == 2**31 - 1


@pytest.mark.parametrize("sample", SAMPLES, ids=[path.stem for path in SAMPLES])
def test_every_aibrix_sample_passes_the_name_and_artifact_rules(sample: Path) -> None:
    for document in yaml.safe_load_all(sample.read_text()):
        assert accepted_by_schema(document["metadata"]["name"], NAME)
        assert accepted_by_schema(document["spec"]["artifactURL"], SPEC["artifactURL"])
