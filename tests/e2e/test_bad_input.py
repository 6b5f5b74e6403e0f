"""Bad specs fail with a condition naming the field and the rule; the operator keeps serving everyone else."""

from __future__ import annotations

import base64

import pytest

from modeladapter.fsm.phases import PlacementState
from modeladapter.operator.kube.client import MODELADAPTERS, SECRETS, KubeError
from modeladapter.sandbox.engine.faults import Fault
from tests.e2e.conftest import ARTIFACT, FAST, POD_LABELS, Sandbox, adapter_manifest


async def ready_condition(sandbox: Sandbox, name: str) -> dict[str, str]:
    status = await sandbox.phase("Failed", name)
    return {c["type"]: c for c in status["conditions"]}["Ready"]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        pytest.param({"artifactURL": "hf://sql-lora"}, "spec.artifactURL", id="hub-id-without-org"),
        pytest.param({"podSelector": {}}, "spec.podSelector", id="empty-selector"),
        pytest.param(
            {"updateStrategy": {"maxUnavailable": 0, "maxSurge": 0}},
            "spec.updateStrategy.maxUnavailable",
            id="update-that-cannot-start",
        ),
    ],
)
async def test_an_invalid_spec_fails_naming_the_field_while_others_keep_running(
    sandbox: Sandbox, spec: dict[str, object], field: str
) -> None:
    await sandbox.add_pods(2)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest("broken", **spec))
    await sandbox.apply(adapter_manifest("healthy", replicas=1))
    ready = await ready_condition(sandbox, "broken")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert ready["message"].startswith(f"{field}: ")
    await sandbox.phase("Running", "healthy")


async def test_fixing_an_invalid_spec_starts_over_and_reaches_running(sandbox: Sandbox) -> None:
    await sandbox.add_pods(1)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(artifactURL="hf://nowhere"))
    await sandbox.phase("Failed")
    await sandbox.apply(adapter_manifest())
    status = await sandbox.phase("Running")
    assert status["observedGeneration"] == 2


@pytest.mark.parametrize(
    ("name", "spec", "field"),
    [
        pytest.param("qwen-code-lora", {"replicas": 0}, "spec.replicas", id="zero-replicas"),
        pytest.param("qwen-code-lora", {"replicas": -1}, "spec.replicas", id="negative-replicas"),
        pytest.param("qwen-code-lora", {"artifactURL": "ftp://models/x"}, "spec.artifactURL", id="unknown-scheme"),
        pytest.param("qwen-code-lora", {"schedulerName": "leastLatency"}, "spec.schedulerName", id="unknown-scheduler"),
        pytest.param("qwen.code.lora", {}, "metadata.name", id="not-a-service-name"),
    ],
)
async def test_what_the_operator_would_refuse_anyway_is_refused_by_the_crd_schema(
    sandbox: Sandbox, name: str, spec: dict[str, object], field: str
) -> None:
    with pytest.raises(KubeError) as refused:
        await sandbox.kube.create(MODELADAPTERS, "default", adapter_manifest(name, **spec))
    assert refused.value.status == 422 and f"{field}: " in refused.value.message


async def test_a_missing_secret_is_reported_and_retried_until_it_appears(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(1)
    for pod in pods:
        sandbox.engine(pod).api_key = "engine-key"
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(apiKeySecretRef={"name": "engine-key", "key": "token"}))
    ready = await ready_condition(sandbox, "qwen-code-lora")
    assert (ready["reason"], ready["message"]) == (
        "SecretNotFound",
        "spec.apiKeySecretRef.name: Secret default/engine-key not found",
    )
    await sandbox.kube.create(
        SECRETS,
        "default",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "engine-key"},
            "data": {"token": base64.b64encode(b"engine-key").decode()},
        },
    )
    await sandbox.phase("Running", timeout=10)


async def test_an_engine_answering_garbage_is_an_error_not_a_crash(sandbox: Sandbox) -> None:
    """A load is only believed once /v1/models lists it; an engine that answers nonsense there cannot be
    believed, and the adapter says so instead of claiming Running."""

    pods = await sandbox.add_pods(2)
    await sandbox.start_operator()
    for pod in pods:
        sandbox.engine(pod).inject(Fault(status=200, body="<html>proxy error</html>"), route="models", times=None)
    await sandbox.apply(adapter_manifest("other", replicas=1))
    ready = await ready_condition(sandbox, "other")
    assert ready["reason"] == "ModelAdapterLoadingError" and "ProtocolError" in ready["message"]
    assert sandbox.operators[0].controller.errors == 0


async def test_fixing_the_artifact_of_a_failed_adapter_retries_at_once(sandbox: Sandbox) -> None:
    from dataclasses import replace
    from datetime import timedelta

    from modeladapter.fsm.backoff import BackoffPolicy

    await sandbox.add_pods(1)
    # A long cool-down: only the new spec can explain a quick recovery.
    await sandbox.start_operator(
        replace(FAST, backoff=BackoffPolicy(base=timedelta(seconds=0.05), cap=timedelta(seconds=60)))
    )
    await sandbox.apply(adapter_manifest(replicas=1, artifactURL="huggingface://org/does-not-exist"))
    await sandbox.phase("Failed")
    await sandbox.apply(adapter_manifest(replicas=1, artifactURL=ARTIFACT))
    await sandbox.phase("Running", timeout=5)


async def test_an_unusable_port_label_fails_naming_it(sandbox: Sandbox) -> None:
    await sandbox.add_pods(1)
    running = await sandbox.start_operator()
    manifest = adapter_manifest(replicas=1)
    manifest["metadata"]["labels"]["model.aibrix.ai/port"] = "http"
    await sandbox.apply(manifest)
    status = await sandbox.phase("Failed")
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert ready["message"].startswith("metadata.labels[model.aibrix.ai/port]: ")
    assert running.controller.errors == 0


async def test_a_pod_with_an_engine_nobody_can_drive_is_skipped_not_a_crash(sandbox: Sandbox) -> None:
    (odd,) = await sandbox.add_pods(1, labels={**POD_LABELS, "model.aibrix.ai/engine": "tgi"}, prefix="tgi")
    (good,) = await sandbox.add_pods(1)
    running = await sandbox.start_operator()
    await sandbox.apply(adapter_manifest())
    status = await sandbox.eventually(
        lambda: sandbox.status_where(lambda s: s.get("instances") == [good]), what="the good pod serving"
    )
    assert status["phase"] == "Running"
    placement = (await sandbox.state()).placement(odd)
    assert placement is not None and placement.state is PlacementState.EXHAUSTED
    assert "Unsupported" in (placement.last_error or "")
    assert running.controller.errors == 0
