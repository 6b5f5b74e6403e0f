"""The status never lies: `instances` are exactly the pods whose engine serves the adapter, and a loss leaves
the status and the EndpointSlice before the calls that follow it (a reload, an unload) can take their time."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

from modeladapter.operator.kube.client import MODELADAPTERS, SECRETS
from modeladapter.sandbox.engine.faults import Fault
from tests.e2e.conftest import FAST, Sandbox, adapter_manifest


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


async def test_a_lost_instance_leaves_the_status_and_the_endpoints_before_its_reload_returns(sandbox: Sandbox) -> None:
    """The engine of one of two instances loses the adapter (another client unloads it), and the reload then
    takes 4 s. The log says the pod
    is no instance as soon as the verification finds out; the status and the EndpointSlice must say so too,
    not only once the reload returns (which may take the whole engine timeout, or never happen if the operator
    dies meanwhile: soak seed 20261126, sqlite, 300 s, d-lora-051 named a lost pod for 70 s)."""
    lost, kept = await sandbox.add_pods(2)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest())
    await sandbox.eventually(lambda: sandbox.ready(2), timeout=10, what="two instances")
    engine = sandbox.engine(lost)
    engine.inject(Fault(delay=4.0), route="load", times=1)
    engine.unload_by_another_client("qwen-code-lora")
    began = time.monotonic()

    async def one_instance() -> bool:
        return (await sandbox.status()).get("instances") == [kept]

    await sandbox.eventually(one_instance, timeout=3.0, what="the lost pod out of the status")
    _, endpoint_slice = await sandbox.service_and_slice()
    assert [a for e in endpoint_slice.get("endpoints") or [] for a in e["addresses"]] == [sandbox.pod_ip(kept)]
    assert time.monotonic() - began < 4.0, "the reload was still in flight"
    assert "qwen-code-lora" not in engine.adapters
    await sandbox.eventually(lambda: sandbox.ready(2), timeout=10, what="the reload")


async def test_a_deleted_adapter_leaves_the_status_and_the_endpoints_before_its_unloads_return(
    sandbox: Sandbox,
) -> None:
    """Deletion decides to unload everywhere, and the unload then takes 4 s. The status must say Terminating with
    no instances, and the EndpointSlice list nobody, before the unloads return (soak seed 20261126, sqlite,
    300 s: d-lora-048 stayed Running on a pod whose engine had lost it for 70 s while its unloads hung)."""
    (pod,) = await sandbox.add_pods(1)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    await sandbox.phase("Running")
    sandbox.engine(pod).inject(Fault(delay=4.0), route="unload", times=1)
    await sandbox.delete()
    began = time.monotonic()
    status = await sandbox.phase("Terminating", timeout=3.0)
    assert status["instances"] == [] and status["readyReplicas"] == 0
    _, endpoint_slice = await sandbox.service_and_slice()
    assert not endpoint_slice.get("endpoints")
    assert time.monotonic() - began < 4.0, "the unload was still in flight"
    await sandbox.eventually(lambda: sandbox.gone(), timeout=10, what="the deletion")


async def test_status_is_truthful_instances_only_while_the_engine_lists_the_adapter(sandbox: Sandbox) -> None:
    (pod,) = await sandbox.add_pods(1)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    await sandbox.phase("Running")
    engine = sandbox.engine(pod)
    # Someone else unloads the adapter and the engine refuses it back: the status must stop claiming it.
    engine.inject(Fault(status=503), route="load", times=None)
    engine.unload_by_another_client("qwen-code-lora")
    status = await sandbox.eventually(
        lambda: sandbox.status_where(name="qwen-code-lora", check=lambda s: s.get("instances") == []),
        what="an honest status",
    )
    assert status["phase"] in ("Loading", "Failed")
    assert {c["type"]: c for c in status["conditions"]}["Ready"]["status"] == "False"
    _, endpoint_slice = await sandbox.service_and_slice()
    assert endpoint_slice.get("endpoints") in ([], None)


async def test_a_status_written_by_someone_else_is_put_right_at_once(sandbox: Sandbox) -> None:
    # Verification is minutes away: only the watch can bring the overwrite to the operator's attention.
    await sandbox.add_pods(2)
    await sandbox.start_operator(replace(FAST, verify_interval=timedelta(minutes=10)))
    await sandbox.apply(adapter_manifest(replicas=2))
    truth = await sandbox.instances_ready(2)
    await sandbox.kube.patch(
        MODELADAPTERS,
        "default",
        "qwen-code-lora",
        {"status": {"phase": "Failed", "readyReplicas": 0, "instances": []}},
        subresource="status",
    )
    restored = await sandbox.eventually(
        lambda: sandbox.status_where(name="qwen-code-lora", check=lambda s: s.get("phase") == "Running" and s.get("readyReplicas") == 2),
        timeout=3, what="the operator's status back",
    )  # fmt: skip
    assert restored["instances"] == truth["instances"]
    # Its own writes coming back do not wake it: the adapter settles instead of being reconciled in a loop.
    settled = sandbox.operators[0].controller.reconciles
    await asyncio.sleep(1)
    assert sandbox.operators[0].controller.reconciles - settled <= 1


async def _instances(sandbox: Sandbox, pods: list[str]) -> dict[str, Any] | None:
    status = await sandbox.status()
    return status if status.get("instances") == pods else None
