"""Values no one should write, and someone will: a Hugging Face URL with a fragment or a line break, a NUL in a
path, a label key Kubernetes would refuse. Each is `InvalidSpec` naming the field and saying why, and the
message never carries a control character as it came (it shows an escape instead)."""

from __future__ import annotations

from typing import Any

import pytest

from modeladapter.operator.api.spec import AdapterSpec, SpecProblem, parse_spec
from tests.operator.test_spec_validation import adapter

CONTROL_CHARACTERS = ("\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\u2028", "\u202e")


def refused(raw: dict[str, Any]) -> SpecProblem:
    parsed = parse_spec(raw)
    assert isinstance(parsed, SpecProblem), f"accepted: {parsed}"
    assert parsed.reason == "InvalidSpec"
    assert not any(character in parsed.message for character in CONTROL_CHARACTERS), parsed.message
    return parsed


def accepted(raw: dict[str, Any]) -> AdapterSpec:
    parsed = parse_spec(raw)
    assert isinstance(parsed, AdapterSpec), parsed
    return parsed


def selector(labels: dict[str, str] | None = None, *expressions: dict[str, Any]) -> dict[str, Any]:
    return {"matchLabels": labels or {"app": "vllm"}, "matchExpressions": list(expressions)}


class TestHuggingFaceURLs:
    @pytest.mark.parametrize(
        "url",
        [
            "huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora",
            "hf://yard1/llama-2-7b-sql-lora-test",
            "hf://org_/_repo",
            "hf://org/repo/",
            "hf://" + "o" * 96 + "/" + "r" * 96,
        ],
    )
    def test_a_repository_id_the_hub_accepts_is_accepted(self, url: str) -> None:
        assert accepted(adapter(artifactURL=url)).artifact_url == url

    @pytest.mark.parametrize(
        ("url", "why"),
        [
            pytest.param("huggingface://org/repo#main", "fragment", id="fragment"),
            pytest.param("hf://org/repo?revision=main", "query", id="query"),
            pytest.param("hf://org/repo@main", "revision", id="revision"),
            pytest.param("hf://org/my repo", "whitespace", id="space"),
            pytest.param("hf://org/repo\n", "a line feed", id="trailing-newline"),
            pytest.param("hf://org/re\npo", "line feed", id="inner-newline"),
            pytest.param("hf://org/re\x00po", "NUL", id="nul"),
            pytest.param("hf://org/repo\t", "a tab", id="tab"),
            pytest.param("hf://org/re\u202epo", "U+202E", id="bidi-override"),
            pytest.param("hf://org/café", "'é'", id="non-ascii"),
            pytest.param("hf://org/" + "r" * 97, "97 characters", id="repo-too-long"),
            pytest.param("hf://" + "o" * 97 + "/repo", "97 characters", id="org-too-long"),
            pytest.param("hf://org/-repo", "start and end", id="leading-dash"),
            pytest.param("hf://org/repo.", "start and end", id="trailing-dot"),
            pytest.param("hf://org/re--po", "'--'", id="double-dash"),
            pytest.param("hf://org/re..po", "'..'", id="double-dot"),
            pytest.param("hf://org/repo.git", "'.git'", id="dot-git"),
            pytest.param("hf://org/repo/extra", "ORG/REPO", id="three-parts"),
        ],
    )
    def test_anything_else_is_refused_saying_why(self, url: str, why: str) -> None:
        problem = refused(adapter(artifactURL=url))
        assert problem.field == "spec.artifactURL"
        assert why in problem.rule, problem.rule

    def test_a_control_character_is_shown_escaped(self) -> None:
        problem = refused(adapter(artifactURL="hf://org/repo\x00\n"))
        assert "\\x00" in problem.message and "U+0000" in problem.rule


class TestOtherArtifactURLs:
    @pytest.mark.parametrize(
        "url",
        [
            "s3://bucket/key\n",
            "s3://bucket/a\rb",
            "gcs://bucket/x\ty",
            "gs://bucket/x\x00",
            "tos://bucket/x\x1b[31m",
            "s3://my bucket/x",
            "s3://bucket/x ",
            "/models/adapter\n",
            "/models/adapter\x00",
            "/models/adapter ",
            "/models/ada\u2028pter",
        ],
    )
    def test_control_characters_and_stray_whitespace_are_refused(self, url: str) -> None:
        problem = refused(adapter(artifactURL=url))
        assert problem.field == "spec.artifactURL"

    def test_a_path_may_contain_a_plain_space_as_a_directory_name_may(self) -> None:
        assert accepted(adapter(artifactURL="/models/my adapter")).artifact_url == "/models/my adapter"


class TestPodSelectorLabels:
    @pytest.mark.parametrize(
        "labels",
        [
            {"model.aibrix.ai/name": "qwen-coder-1-5b-instruct"},
            {"app": ""},
            {"A_b.c-D": "x_Y.z-9"},
            {"k" * 63: "v" * 63},
            {("a" * 63 + ".") * 3 + "a" * 61 + "/name": "x"},
        ],
    )
    def test_keys_and_values_kubernetes_accepts_are_accepted(self, labels: dict[str, str]) -> None:
        assert accepted(adapter(podSelector=selector(labels))).pod_selector.match_labels == tuple(labels.items())

    @pytest.mark.parametrize(
        ("key", "why"),
        [
            pytest.param("bad key!", "name part", id="punctuation"),
            pytest.param("k" * 64, "64 characters", id="name-too-long"),
            pytest.param("-app", "name part", id="leading-dash"),
            pytest.param("a/b/c", "at most one '/'", id="two-slashes"),
            pytest.param("/app", "prefix", id="empty-prefix"),
            pytest.param("example.com/", "name part", id="empty-name"),
            pytest.param("Example.com/app", "prefix", id="uppercase-prefix"),
            pytest.param("a" * 254 + "/app", "254 characters", id="prefix-too-long"),
            pytest.param("app\n", "name part", id="newline"),
        ],
    )
    def test_a_bad_match_labels_key_is_invalid_spec_naming_the_key(self, key: str, why: str) -> None:
        problem = refused(adapter(podSelector=selector({key: "x"})))
        assert problem.field.startswith("spec.podSelector.matchLabels[")
        assert "label key" in problem.rule and why in problem.rule, problem.rule

    def test_the_key_is_quoted_in_the_field_path(self) -> None:
        assert refused(adapter(podSelector=selector({"bad key!": "x"}))).field == (
            'spec.podSelector.matchLabels["bad key!"]'
        )
        assert refused(adapter(podSelector=selector({"app\n": "x"}))).field == (
            'spec.podSelector.matchLabels["app\\n"]'
        )

    @pytest.mark.parametrize(
        ("value", "why"),
        [
            pytest.param("bad value!", "letters, digits", id="punctuation"),
            pytest.param("v" * 64, "64 characters", id="too-long"),
            pytest.param("-x", "start and end", id="leading-dash"),
            pytest.param("x\x00", "letters, digits", id="nul"),
        ],
    )
    def test_a_bad_match_labels_value_is_invalid_spec_naming_its_key(self, value: str, why: str) -> None:
        problem = refused(adapter(podSelector=selector({"app": value})))
        assert problem.field == 'spec.podSelector.matchLabels["app"]'
        assert "label value" in problem.rule and why in problem.rule, problem.rule

    def test_a_bad_expression_key_is_invalid_spec_naming_the_expression(self) -> None:
        problem = refused(adapter(podSelector=selector(None, {"key": "bad key!", "operator": "Exists"})))
        assert problem.field == "spec.podSelector.matchExpressions[0].key"
        assert "label key" in problem.rule

    def test_a_bad_expression_value_is_invalid_spec_naming_the_value(self) -> None:
        expression = {"key": "zone", "operator": "In", "values": ["a", "b c"]}
        problem = refused(adapter(podSelector=selector(None, expression)))
        assert problem.field == "spec.podSelector.matchExpressions[0].values[1]"
        assert "label value" in problem.rule


@pytest.mark.parametrize("field", ["credentialsSecretRef", "apiKeySecretRef"])
def test_a_secret_name_with_a_trailing_line_break_is_refused(field: str) -> None:
    # `$` matches before a final newline: the name check must take the whole string.
    problem = refused(adapter(**{field: {"name": "engine-key\n"}}))
    assert problem.field == f"spec.{field}.name"
