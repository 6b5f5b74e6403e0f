"""Bugs the chaos soak (`tests/reliability/`) found, each pinned by a small, deterministic test."""

from __future__ import annotations

import time

from modeladapter.fsm.events import LoadFailed, PlacementExhausted
from modeladapter.sandbox.engine.faults import Fault
from tests.e2e.conftest import Sandbox, adapter_manifest


async def test_a_failed_listing_after_an_accepted_load_is_retried_not_blamed_on_the_adapter(sandbox: Sandbox) -> None:
    """The engine accepts the load, then its `/v1/models` answers a generic 500 once. That says nothing
    against the adapter (the engine now holds it): the pod is retried after the backoff, not exhausted for
    the cool-down with a copy the status does not count (soak seed 20261126, sqlite, 40 s)."""
    (pod,) = await sandbox.add_pods(1)
    sandbox.engine(pod).inject(Fault(status=500), route="models", times=1)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    await sandbox.phase("Running", timeout=10)
    assert (await sandbox.status())["instances"] == [pod]
    uid = (await sandbox.state()).stream_id
    assert uid is not None
    recorded = [e.payload for e in await sandbox.store.read(uid)]
    failures = [p for p in recorded if isinstance(p, LoadFailed)]
    assert len(failures) == 1 and failures[0].retriable, failures
    assert "500" in failures[0].error
    assert not [p for p in recorded if isinstance(p, PlacementExhausted)]


async def test_a_lost_instance_leaves_the_status_and_the_endpoints_before_its_reload_returns(sandbox: Sandbox) -> None:
    """The engine of one of two instances loses the adapter, and the reload then takes 4 s. The log says the pod
    is no instance as soon as the verification finds out; the status and the EndpointSlice must say so too,
    not only once the reload returns (which may take the whole engine timeout, or never happen if the operator
    dies meanwhile: soak seed 20261126, sqlite, 300 s, d-lora-051 named a lost pod for 70 s)."""
    lost, kept = await sandbox.add_pods(2)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest())
    await sandbox.eventually(lambda: sandbox.ready(2), timeout=10, what="two instances")
    engine = sandbox.engine(lost)
    engine.inject(Fault(delay=4.0), route="load", times=1)
    engine.evict("qwen-code-lora")
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
