"""Reading a ModelAdapter's spec: AIBrix's manifests are accepted as they are; a bad spec names its field."""

from __future__ import annotations

from typing import Any

import pytest

from modeladapter.fsm.scheduling import SchedulingPolicy
from modeladapter.operator.api.spec import (
    AdapterSpec,
    LabelSelector,
    Requirement,
    SecretKeyRef,
    SpecProblem,
    parse_spec,
)

QWEN_SELECTOR = {
    "matchLabels": {"model.aibrix.ai/name": "qwen-coder-1-5b-instruct", "adapter.model.aibrix.ai/enabled": "true"}
}


def adapter(name: str = "qwen-code-lora", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "podSelector": QWEN_SELECTOR,
        "artifactURL": "huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora",
    }
    body.update(spec)
    return {
        "apiVersion": "model.aibrix.ai/v1alpha1",
        "kind": "ModelAdapter",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"model.aibrix.ai/name": name, "model.aibrix.ai/port": "8000"},
        },
        "spec": {k: v for k, v in body.items() if v is not None},
    }


def valid(raw: dict[str, Any]) -> AdapterSpec:
    parsed = parse_spec(raw)
    assert isinstance(parsed, AdapterSpec), parsed
    return parsed


def problem(raw: dict[str, Any]) -> SpecProblem:
    parsed = parse_spec(raw)
    assert isinstance(parsed, SpecProblem), parsed
    return parsed


class TestAIBrixSamplesAreAccepted:
    def test_the_base_sample(self) -> None:
        spec = valid(adapter(baseModel="qwen-coder-1-5b-instruct", schedulerName="default"))
        assert (spec.lora_name, spec.replicas, spec.scheduler) == (
            "qwen-code-lora",
            None,
            SchedulingPolicy.LEAST_ADAPTERS,
        )
        assert (
            spec.pod_selector.render()
            == "adapter.model.aibrix.ai/enabled=true,model.aibrix.ai/name=qwen-coder-1-5b-instruct"
        )
        assert not spec.needs_runtime_sidecar

    def test_the_api_key_sample(self) -> None:
        spec = valid(
            adapter(
                "qwen-code-lora-with-key",
                additionalConfig={"api-key": "sk-kFJ12nKsFakefVmGpj3QzX65s4RbN2xJqWzPYCjYu7wT3BFake"},
            )
        )
        assert spec.has_inline_api_key

    def test_the_multi_replica_sample_with_its_unused_keys(self) -> None:
        spec = valid(
            adapter(
                "sample-lora-multi-replica",
                schedulerName="least-adapters",
                additionalConfig={"rank": "16", "alpha": "32", "timeout": "120s"},
            )
        )
        assert spec.scheduler is SchedulingPolicy.LEAST_ADAPTERS and not spec.has_inline_api_key

    def test_the_s3_sample_needs_the_runtime_sidecar(self) -> None:
        raw = adapter(
            "qwen2-5-7b-lora",
            artifactURL="s3://aibrix-example-model-artifacts/Qwen2.5-7B-LoRA/",
            credentialsSecretRef={"name": "aws-credential"},
        )
        spec = valid(raw)
        assert spec.credentials_secret == "aws-credential" and spec.needs_runtime_sidecar

    def test_replicas_one_as_aibrix_allows_and_more_as_we_do(self) -> None:
        assert valid(adapter(replicas=1)).replicas == 1
        assert valid(adapter(replicas=3)).replicas == 3


class TestWhatGoesBeyondAIBrix:
    def test_match_expressions_are_honoured(self) -> None:
        spec = valid(
            adapter(
                podSelector={
                    "matchLabels": {"model.aibrix.ai/name": "llama"},
                    "matchExpressions": [
                        {"key": "zone", "operator": "In", "values": ["a", "b"]},
                        {"key": "canary", "operator": "DoesNotExist"},
                    ],
                }
            )
        )
        selector = spec.pod_selector
        assert selector.matches({"model.aibrix.ai/name": "llama", "zone": "a"})
        assert not selector.matches({"model.aibrix.ai/name": "llama", "zone": "c"})
        assert not selector.matches({"model.aibrix.ai/name": "llama", "zone": "a", "canary": "yes"})
        assert selector.render() == "model.aibrix.ai/name=llama,zone in (a,b),!canary"

    def test_an_api_key_secret_reference(self) -> None:
        assert valid(adapter(apiKeySecretRef={"name": "vllm-key", "key": "token"})).api_key_secret == SecretKeyRef(
            "vllm-key", "token"
        )
        assert valid(adapter(apiKeySecretRef={"name": "vllm-key"})).api_key_secret == SecretKeyRef(
            "vllm-key", "api-key"
        )

    @pytest.mark.parametrize(
        "url", ["hf://org/repo", "gs://bucket/adapters/x", "gcs://b/x", "tos://b/x/", "/models/adapters/sql"]
    )
    def test_every_documented_scheme(self, url: str) -> None:
        assert valid(adapter(artifactURL=url)).artifact_url == url


@pytest.mark.parametrize(
    ("raw", "field", "rule"),
    [
        pytest.param(
            adapter(artifactURL="ftp://host/x"), "spec.artifactURL", "unsupported scheme", id="unknown-scheme"
        ),
        pytest.param(
            adapter(artifactURL="hugingface://org/repo"),
            "spec.artifactURL",
            "unsupported scheme",
            id="misspelled-scheme",
        ),
        pytest.param(adapter(artifactURL="aabbcc"), "spec.artifactURL", "unsupported scheme", id="not-a-url"),
        pytest.param(adapter(artifactURL="huggingface://"), "spec.artifactURL", "ORG/REPO", id="hf-without-repo"),
        pytest.param(adapter(artifactURL="s3://"), "spec.artifactURL", "needs a bucket", id="s3-without-bucket"),
        pytest.param(adapter(artifactURL="/models/../etc"), "spec.artifactURL", "'..'", id="path-escape"),
        pytest.param(adapter(artifactURL=""), "spec.artifactURL", "is required", id="empty-url"),
        pytest.param(adapter(podSelector={}), "spec.podSelector", "must not be empty", id="empty-selector"),
        pytest.param(
            adapter(podSelector={"matchExpressions": [{"key": "a", "operator": "In"}]}),
            "spec.podSelector.matchExpressions[0].values",
            "must not be empty",
            id="in-without-values",
        ),
        pytest.param(
            adapter(podSelector={"matchExpressions": [{"key": "a", "operator": "Near"}]}),
            "spec.podSelector.matchExpressions[0].operator",
            "must be one of",
            id="bad-operator",
        ),
        pytest.param(adapter(replicas=0), "spec.replicas", "at least 1", id="replicas-0"),
        pytest.param(adapter(replicas=-2), "spec.replicas", "at least 1", id="replicas-negative"),
        pytest.param(adapter(replicas=True), "spec.replicas", "at least 1", id="replicas-bool"),
        pytest.param(
            adapter(schedulerName="leastLatency"), "spec.schedulerName", "unknown scheduler", id="unknown-scheduler"
        ),
        pytest.param(adapter("qwen.code.lora"), "metadata.name", "LoRA name", id="dotted-name"),
        pytest.param(adapter("x" * 101), "metadata.name", "LoRA name", id="long-name"),
        pytest.param(
            adapter(credentialsSecretRef={"name": "../other-namespace"}),
            "spec.credentialsSecretRef.name",
            "adapter's namespace",
            id="secret-path",
        ),
        pytest.param(
            adapter(apiKeySecretRef={"name": "key", "key": "a b"}),
            "spec.apiKeySecretRef.key",
            "data key",
            id="secret-key",
        ),
        pytest.param(
            adapter(additionalConfig={"api-key": 42}), "spec.additionalConfig", "strings", id="non-string-config"
        ),
        pytest.param(
            adapter(updateStrategy="rolling"), "spec.updateStrategy", "must be an object", id="strategy-not-object"
        ),
        pytest.param(
            adapter(updateStrategy={"maxSurge": -1}),
            "spec.updateStrategy.maxSurge",
            "0 or more",
            id="negative-surge",
        ),
        pytest.param(
            adapter(updateStrategy={"maxUnavailable": "25%"}),
            "spec.updateStrategy.maxUnavailable",
            "whole number",
            id="percent-unavailable",
        ),
        pytest.param(
            adapter(replicas=2, updateStrategy={"maxUnavailable": 0, "maxSurge": 0}),
            "spec.updateStrategy.maxUnavailable",
            "maxSurge is 0 too",
            id="no-update-could-start",
        ),
        pytest.param(
            adapter(updateStrategy={"maxUnavailable": 0}),
            "spec.updateStrategy.maxUnavailable",
            "without spec.replicas an update cannot surge",
            id="no-surge-without-replicas",
        ),
    ],
)
def test_a_bad_spec_names_the_field_and_the_rule(raw: dict[str, Any], field: str, rule: str) -> None:
    found = problem(raw)
    assert found.field == field
    assert rule in found.rule
    assert found.message.startswith(f"{field}: ")


def test_the_update_strategy_is_optional_and_read_when_given() -> None:
    assert (valid(adapter()).update_strategy.max_unavailable, valid(adapter()).update_strategy.max_surge) == (1, 1)
    strategy = valid(adapter(replicas=3, updateStrategy={"maxUnavailable": 0, "maxSurge": 2})).update_strategy
    assert (strategy.max_unavailable, strategy.max_surge) == (0, 2)


def test_a_missing_spec_or_selector_is_reported_not_raised() -> None:
    assert problem({"metadata": {"name": "x"}}).field == "spec"
    raw = adapter()
    del raw["spec"]["podSelector"]
    assert problem(raw).field == "spec.podSelector"


def test_selectors_render_in_label_selector_syntax() -> None:
    selector = LabelSelector(
        match_labels=(("app", "vllm"),),
        match_expressions=(Requirement("tier", "NotIn", ("a", "b")), Requirement("gpu", "Exists")),
    )
    assert selector.render() == "app=vllm,tier notin (a,b),gpu"
    assert selector.matches({"app": "vllm", "tier": "c", "gpu": "1"})
    assert not selector.matches({"app": "vllm", "tier": "c"})
