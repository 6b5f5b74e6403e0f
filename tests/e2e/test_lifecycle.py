"""The documented lifecycle, for real: Pending -> Scheduled -> Loading -> Bound -> Running, truthfully."""

from __future__ import annotations

from modeladapter.fsm.phases import Phase
from modeladapter.store.queries import phase_history
from tests.e2e.conftest import ARTIFACT, Sandbox, adapter_manifest


async def test_the_phase_sequence_pending_scheduled_loading_bound_running(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(3)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    status = await sandbox.phase("Running")
    history = await phase_history(sandbox.store, namespace="default", name="qwen-code-lora")
    assert [t.to_phase for t in history] == [Phase.PENDING, Phase.SCHEDULED, Phase.LOADING, Phase.BOUND, Phase.RUNNING]
    assert (
        history[1].message
        == f"ModelAdapter default/qwen-code-lora has selected 1 pods for scheduling: [{status['instances'][0]}]"
    )
    (instance,) = status["instances"]
    assert instance in pods
    assert "qwen-code-lora" in sandbox.engine(instance).adapters
    assert sandbox.engine(instance).adapters["qwen-code-lora"].path == ARTIFACT.removeprefix("huggingface://")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (
        conditions["Initialized"]["status"],
        conditions["Initialized"]["reason"],
        conditions["Initialized"]["message"],
    ) == (
        "Unknown",
        "ModelAdapterPending",
        "Starting reconciliation",
    )
    assert (
        conditions["Scheduled"]["message"]
        == f"ModelAdapter default/qwen-code-lora has selected 1 pods for scheduling: [{instance}]"
    )
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"], conditions["Ready"]["message"]) == (
        "True",
        "ModelAdapterAvailable",
        "ModelAdapter default/qwen-code-lora is ready",
    )
    assert (status["desiredReplicas"], status["readyReplicas"], status["candidates"]) == (1, 1, 3)
    service, endpoint_slice = await sandbox.service_and_slice()
    assert service["spec"]["clusterIP"] == "None"
    assert [e["addresses"] for e in endpoint_slice["endpoints"]] == [[sandbox.pod_ip(instance)]]


async def test_waiting_phases_say_why_in_their_conditions(sandbox: Sandbox) -> None:
    """Pending without pods explains itself (AIBrix leaves it unexplained, its issue #1885)."""
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    status = await sandbox.phase("Pending")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Initialized"]["message"] == "Starting reconciliation"
    scheduled = conditions["Scheduled"]
    assert (scheduled["status"], scheduled["reason"]) == ("False", "NoCandidatePods")
    assert "model.aibrix.ai/name=qwen-coder-1-5b-instruct" in scheduled["message"]
    assert "Ready" not in conditions
    (pod,) = await sandbox.add_pods(1)
    running = await sandbox.phase("Running")
    assert running["instances"] == [pod]
    history = await phase_history(sandbox.store, namespace="default", name="qwen-code-lora")
    assert [t.trigger for t in history][-4:] == ["pods_selected", "load_started", "load_verified", "service_bound"]
