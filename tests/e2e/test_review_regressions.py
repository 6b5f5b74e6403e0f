"""Failures a review of the reconciler found, each pinned by the scenario that triggered it."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from modeladapter.fsm.events import LoadSucceeded, UnloadFailed
from modeladapter.fsm.phases import PlacementState
from modeladapter.operator.kube.client import SECRETS, SERVICES
from modeladapter.sandbox.engine.faults import Fault
from tests.e2e.conftest import ARTIFACT, FAST, POD_LABELS, Sandbox, adapter_manifest


async def test_a_failing_unload_is_retried_on_a_timer_and_given_up_at_its_deadline(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(2)
    await sandbox.start_operator()  # unload_timeout 3 s, backoff base 0.05 s
    await sandbox.apply(adapter_manifest(replicas=2))
    await sandbox.eventually(lambda: sandbox.ready(2), what="two instances")
    for pod in pods:
        sandbox.engine(pod).inject(Fault(status=500), route="unload", times=None)
    await sandbox.apply(adapter_manifest(replicas=1))
    await asyncio.sleep(FAST.unload_timeout.total_seconds() + 1.5)
    state = await sandbox.state()
    assert not any(p.state is PlacementState.UNLOADING for p in state.placements), "abandoned at the deadline"
    uid = state.stream_id
    assert uid is not None
    failures = [e for e in await sandbox.store.read(uid) if isinstance(e.payload, UnloadFailed)]
    bound = FAST.unload_timeout / FAST.backoff.base + 2
    assert failures and failures[-1].payload.abandoned and len(failures) <= bound, len(failures)


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
    status = await sandbox.eventually(lambda: _instances(sandbox, [good]), what="the good pod serving")
    assert status["phase"] == "Running"
    placement = (await sandbox.state()).placement(odd)
    assert placement is not None and placement.state is PlacementState.EXHAUSTED
    assert "Unsupported" in (placement.last_error or "")
    assert running.controller.errors == 0


async def test_a_crash_after_a_load_but_before_its_outcome_is_logged_leaks_nothing(sandbox: Sandbox) -> None:
    (pod,) = await sandbox.add_pods(1)
    first = await sandbox.start_operator()
    real_append = first.store.append

    async def dies_before_the_outcome(*args: Any, **kwargs: Any) -> Any:
        if any(isinstance(e.payload, LoadSucceeded) for e in args[1]):
            raise RuntimeError("killed after the load call, before its outcome was written")
        return await real_append(*args, **kwargs)

    first.store.append = dies_before_the_outcome  # type: ignore[method-assign]
    await sandbox.apply(adapter_manifest(replicas=1))
    await sandbox.eventually(lambda: _engine_has(sandbox, pod), what="the engine to hold the adapter")
    await first.stop()
    sandbox.operators.remove(first)
    await sandbox.delete()
    await sandbox.start_operator()
    await sandbox.eventually(lambda: sandbox.gone(), what="the deletion")
    assert "qwen-code-lora" not in sandbox.engine(pod).adapters, "the load written ahead was found and unloaded"


async def test_adapters_arriving_together_do_not_overfill_a_pod(sandbox: Sandbox) -> None:
    from datetime import UTC, datetime, timedelta

    await sandbox.kubelet.create_pod(
        "small",
        "default",
        labels=POD_LABELS,
        annotations={"adapter.model.aibrix.ai/capacity": "1"},
        since=datetime.now(UTC) - timedelta(minutes=5),
    )
    await sandbox.start_operator()
    await asyncio.gather(*(sandbox.apply(adapter_manifest(f"a{i}", replicas=1)) for i in range(3)))
    await sandbox.eventually(lambda: _phases(sandbox, 3), timeout=10, what="every adapter to settle")
    phases = sorted([str((await sandbox.status(f"a{i}")).get("phase")) for i in range(3)])
    assert phases == ["Pending", "Pending", "Running"], phases
    assert len(sandbox.engine("small").adapters) == 1


async def test_a_missing_secret_still_keeps_instances_and_endpoints_truthful(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(2)
    for pod in pods:
        sandbox.engine(pod).api_key = "engine-key"
    await sandbox.kube.create(
        SECRETS,
        "default",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "engine-key"},
            "data": {"api-key": base64.b64encode(b"engine-key").decode()},
        },
    )
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(apiKeySecretRef={"name": "engine-key"}))
    await sandbox.eventually(lambda: sandbox.ready(2), what="two instances")
    await sandbox.kube.delete(SECRETS, "default", "engine-key")
    await sandbox.kubelet.delete(pods[0])
    status = await sandbox.eventually(lambda: _instances(sandbox, [pods[1]]), what="the deleted pod to leave")
    assert status["phase"] == "Failed"
    _, endpoint_slice = await sandbox.service_and_slice()
    assert [e["addresses"] for e in endpoint_slice["endpoints"]] == [[sandbox.pod_ip(pods[1])]]


async def test_a_service_that_is_not_ours_is_never_taken_over(sandbox: Sandbox) -> None:
    await sandbox.add_pods(1)
    user_service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "qwen-code-lora", "labels": {"team": "mine"}},
        "spec": {"selector": {"app": "mine"}, "ports": [{"name": "web", "port": 80, "targetPort": 8080}]},
    }
    await sandbox.kube.create(SERVICES, "default", user_service)
    running = await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    bound = await sandbox.phase("Bound")
    assert bound["instances"], "the adapter is loaded; only its Service is missing"
    service = await sandbox.kube.get(SERVICES, "default", "qwen-code-lora")
    assert service["spec"]["ports"][0]["name"] == "web" and "ownerReferences" not in service["metadata"]
    assert running.controller.errors == 0


async def _instances(sandbox: Sandbox, pods: list[str]) -> dict[str, Any] | None:
    status = await sandbox.status()
    return status if status.get("instances") == pods else None


async def _engine_has(sandbox: Sandbox, pod: str) -> bool:
    return "qwen-code-lora" in sandbox.engine(pod).adapters


async def _phases(sandbox: Sandbox, count: int) -> bool:
    phases = [str((await sandbox.status(f"a{i}")).get("phase")) for i in range(count)]
    return sorted(phases) == ["Pending", "Pending", "Running"]
