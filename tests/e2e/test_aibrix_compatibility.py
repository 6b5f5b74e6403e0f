"""AIBrix's own sample manifests apply unchanged, and do what AIBrix's documentation says they do."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from modeladapter.operator.kube.client import MODELADAPTERS, SECRETS
from modeladapter.sandbox.engine.adapter_files import write_peft_adapter
from modeladapter.sandbox.engine.runtime import SimulatedRuntimeSidecar
from tests.e2e.conftest import FAST, POD_LABELS, Sandbox

SAMPLES = Path(__file__).parent / "aibrix_samples"
SAMPLE_KEY = "sk-kFJ12nKsFakefVmGpj3QzX65s4RbN2xJqWzPYCjYu7wT3BFake"


def sample(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((SAMPLES / name).read_text()) if doc]


async def apply_sample(sandbox: Sandbox, name: str) -> list[str]:
    names = []
    for manifest in sample(name):
        await sandbox.kube.create(MODELADAPTERS, "default", manifest)
        names.append(manifest["metadata"]["name"])
    return names


async def test_the_base_sample_runs_on_every_matching_pod(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(3)
    await sandbox.start_operator()
    (name,) = await apply_sample(sandbox, "adapter.yaml")
    status = await sandbox.eventually(lambda: _ready(sandbox, name, 3), what="three instances")
    assert sorted(status["instances"]) == pods and status["phase"] == "Running"


async def test_the_api_key_sample_sends_its_key_as_a_bearer_token(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(2)
    for pod in pods:
        sandbox.engine(pod).api_key = SAMPLE_KEY  # engines started with vLLM's --api-key
    await sandbox.start_operator()
    (name,) = await apply_sample(sandbox, "adapter-api-key.yaml")
    status = await sandbox.eventually(lambda: _ready(sandbox, name, 2), what="two instances")
    assert status["phase"] == "Running"


async def test_the_multi_lora_sample_loads_four_adapters_side_by_side(sandbox: Sandbox) -> None:
    await sandbox.add_pods(3)
    await sandbox.start_operator()
    names = await apply_sample(sandbox, "adapter-multi-lora.yaml")
    assert len(names) == 4
    for name in names:
        await sandbox.eventually(lambda name=name: _ready(sandbox, name, 3), what=f"{name} on three pods")


async def test_the_multi_replica_sample_uses_every_pod_and_ignores_its_unused_keys(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(3)
    await sandbox.start_operator()
    (name,) = await apply_sample(sandbox, "adapter-multi-replica.yaml")
    status = await sandbox.eventually(lambda: _ready(sandbox, name, 3), what="three instances")
    assert sorted(status["instances"]) == pods


async def test_the_s3_sample_without_the_runtime_sidecar_fails_clearly(sandbox: Sandbox) -> None:
    await sandbox.add_pods(1)
    await _credentials(sandbox)
    await sandbox.start_operator()
    (name,) = await apply_sample(sandbox, "adapter-s3-example.yaml")
    status = await sandbox.phase("Failed", name)
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert ready["reason"] == "ModelAdapterLoadingError"
    assert "s3://" in ready["message"] and "sidecar" in ready["message"]


async def test_the_s3_sample_with_the_runtime_sidecar_downloads_with_the_secrets_credentials(sandbox: Sandbox) -> None:
    pod = await _pod_with_runtime(sandbox)
    await _credentials(sandbox)
    url = "s3://aibrix-example-model-artifacts/Qwen2.5-7B-LoRA/"
    local = write_peft_adapter(sandbox.kubeconfig.parent / "downloads" / "qwen2-5-7b-lora")
    sidecar = SimulatedRuntimeSidecar(
        sandbox.engine(pod),
        artifacts={url: local},
        required_credentials={
            url: {"aws_access_key_id": "AKIAFAKE", "aws_secret_access_key": "secret", "aws_region": "us-east-1"}
        },
    )
    await sidecar.start()
    try:
        await sandbox.start_operator(replace(FAST, runtime_sidecar=True))
        (name,) = await apply_sample(sandbox, "adapter-s3-example.yaml")
        status = await sandbox.phase("Running", name)
        assert status["instances"] == [pod]
        (load,) = [body for body in sidecar.received if "artifact_url" in body]
        assert load["artifact_url"] == url
        assert load["credentials"] == {
            "aws_access_key_id": "AKIAFAKE",
            "aws_secret_access_key": "secret",
            "aws_region": "us-east-1",
        }
    finally:
        await sidecar.stop()


async def _pod_with_runtime(sandbox: Sandbox) -> str:
    from datetime import UTC, datetime, timedelta

    containers = [
        {"name": "vllm-openai", "image": "vllm/vllm-openai:v0.24.0", "ports": [{"containerPort": 8000}]},
        {"name": "aibrix-runtime", "image": "aibrix/runtime:v0.7.0", "ports": [{"containerPort": 8080}]},
    ]
    await sandbox.kubelet.create_pod(
        "with-runtime-0",
        "default",
        labels=POD_LABELS,
        containers=containers,
        since=datetime.now(UTC) - timedelta(minutes=5),
    )
    return "with-runtime-0"


async def _credentials(sandbox: Sandbox) -> None:
    data = {"aws_access_key_id": "AKIAFAKE", "aws_secret_access_key": "secret", "aws_region": "us-east-1"}
    await sandbox.kube.create(
        SECRETS,
        "default",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "aws-credential"},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        },
    )


async def _ready(sandbox: Sandbox, name: str, replicas: int) -> dict[str, Any] | None:
    status = await sandbox.status(name)
    return status if status.get("readyReplicas") == replicas and status.get("phase") == "Running" else None
