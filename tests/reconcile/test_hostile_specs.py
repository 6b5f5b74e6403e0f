"""A spec the API server would take but Kubernetes could never act on ends `Failed`/`InvalidSpec` at once,
naming the field, instead of waiting for pods that no selector of that shape can match."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import adapter_manifest as manifest
from tests.reconcile.conftest import World


@pytest.mark.parametrize(
    ("selector", "field"),
    [
        pytest.param({"matchLabels": {"bad key!": "x"}}, 'spec.podSelector.matchLabels["bad key!"]', id="label-key"),
        pytest.param({"matchLabels": {"app": "x" * 64}}, 'spec.podSelector.matchLabels["app"]', id="label-value"),
        pytest.param(
            {"matchLabels": {"app": "vllm"}, "matchExpressions": [{"key": "no/t/ok", "operator": "Exists"}]},
            "spec.podSelector.matchExpressions[0].key",
            id="expression-key",
        ),
    ],
)
async def test_a_selector_with_a_label_kubernetes_refuses_is_invalid_spec_not_no_candidate_pods(
    world: World, selector: dict[str, object], field: str
) -> None:
    world.add_pod("pod-0")
    world.apply(manifest(replicas=1, podSelector=selector))
    await world.reconcile()
    ready = world.condition("Ready")
    assert (world.status()["phase"], ready["reason"]) == ("Failed", "InvalidSpec")
    assert ready["message"].startswith(f"{field}: ")


async def test_a_hugging_face_url_with_a_fragment_is_invalid_spec(world: World) -> None:
    world.add_pod("pod-0")
    world.apply(manifest(replicas=1, artifactURL="huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora#x"))
    await world.reconcile()
    ready = world.condition("Ready")
    assert (world.status()["phase"], ready["reason"]) == ("Failed", "InvalidSpec")
    assert ready["message"].startswith("spec.artifactURL: ") and "fragment" in ready["message"]
    assert world.engine("pod-0").served == {}
