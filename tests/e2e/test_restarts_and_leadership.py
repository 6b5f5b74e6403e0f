"""The operator can be killed at any instant: a new one folds the log and carries on; two never act at once."""

from __future__ import annotations

import asyncio
from typing import Any

from modeladapter.fsm.events import LoadFailed, LoadStarted, LoadSucceeded, PhaseChanged
from modeladapter.operator.kube.client import LEASES
from modeladapter.sandbox.engine.faults import Fault
from tests.e2e.conftest import Sandbox, adapter_manifest

LOAD = "/v1/load_lora_adapter"


def loads(sandbox: Sandbox, pod: str) -> int:
    return sum(1 for call in sandbox.engine(pod).calls if call.path == LOAD)


async def answered_in_flight_loads(sandbox: Sandbox, pod: str) -> None:
    """A load the killed operator had already sent is still answered by the engine, which runs in this loop:
    give it the chance (up to a second) before the test changes the engine's mind."""
    uid = (await sandbox.state()).stream_id
    assert uid is not None
    started = sum(1 for e in await sandbox.store.read(uid) if isinstance(e.payload, LoadStarted))
    for _ in range(20):
        if loads(sandbox, pod) >= started:
            return
        await asyncio.sleep(0.05)


async def test_retries_survive_a_kill_the_next_operator_continues_the_count(sandbox: Sandbox) -> None:
    (pod,) = await sandbox.add_pods(1)
    sandbox.engine(pod).inject(Fault(status=503), route="load", times=None)
    first = sandbox.spawn_operator("--backoff-base", "0.4", "--no-leader-election")
    await sandbox.apply(adapter_manifest(replicas=1))

    async def failed_twice() -> bool:
        state = await sandbox.state()
        return any(p.attempts >= 2 for p in state.placements)

    await sandbox.eventually(failed_twice, timeout=20, what="two failed attempts")
    first.kill()
    await answered_in_flight_loads(sandbox, pod)
    sandbox.engine(pod).clear_faults()
    sandbox.spawn_operator("--backoff-base", "0.4", "--no-leader-election", identity="operator-b")
    await sandbox.phase("Running", timeout=20)
    uid = (await sandbox.state()).stream_id
    assert uid is not None
    attempts = [e.payload.attempt for e in await sandbox.store.read(uid) if isinstance(e.payload, LoadFailed)]
    assert attempts == list(range(1, len(attempts) + 1)) and len(attempts) >= 2, "the count went on across the kill"
    # Attempts are written ahead of their call: a kill in between costs an attempt, never a second call.
    assert loads(sandbox, pod) <= len(attempts) + 1, "no attempt made more than one load call"


async def test_after_a_kill_the_next_operator_verifies_instead_of_reloading(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(2)
    first = sandbox.spawn_operator("--no-leader-election")
    await sandbox.apply(adapter_manifest())
    await sandbox.eventually(lambda: sandbox.ready(2), timeout=20, what="two instances")
    first.kill()
    before = {pod: loads(sandbox, pod) for pod in pods}
    uid = (await sandbox.state()).stream_id
    assert uid is not None
    phases_before = [e for e in await sandbox.store.read(uid) if isinstance(e.payload, PhaseChanged)]
    second = sandbox.spawn_operator("--no-leader-election", identity="operator-b")
    await sandbox.eventually(
        lambda: _metric_at_least(second, "modeladapter_reconcile_duration_seconds_count", 2),
        timeout=20,
        what="reconciles",
    )
    models_calls = sum(1 for call in sandbox.engine(pods[0]).calls if call.path == "/v1/models")
    await asyncio.sleep(1.0)
    assert {pod: loads(sandbox, pod) for pod in pods} == before, "nothing was loaded twice"
    assert sum(1 for call in sandbox.engine(pods[0]).calls if call.path == "/v1/models") > models_calls, (
        "it re-verified"
    )
    assert [e for e in await sandbox.store.read(uid) if isinstance(e.payload, PhaseChanged)] == phases_before
    assert (await sandbox.status())["phase"] == "Running"


async def test_a_deletion_interrupted_by_a_kill_still_unloads_everywhere(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(2)
    first = sandbox.spawn_operator("--no-leader-election")
    await sandbox.apply(adapter_manifest())
    await sandbox.eventually(lambda: sandbox.ready(2), timeout=20, what="two instances")
    first.kill()
    await sandbox.delete()
    sandbox.spawn_operator("--no-leader-election", identity="operator-b")
    await sandbox.eventually(lambda: sandbox.gone(), timeout=20, what="deletion")
    assert all("qwen-code-lora" not in sandbox.engine(pod).adapters for pod in pods)


async def test_two_operators_never_act_at_once_and_the_standby_takes_over(sandbox: Sandbox) -> None:
    await sandbox.add_pods(2)
    a = sandbox.spawn_operator(identity="operator-a")
    b = sandbox.spawn_operator(identity="operator-b")
    await sandbox.apply(adapter_manifest("first", replicas=1))
    await sandbox.phase("Running", "first", timeout=20)
    for process in (a, b):
        await sandbox.eventually(lambda process=process: _serving(process), timeout=20, what="both operators up")
    lease = await sandbox.kube.get(LEASES, "default", "modeladapter-operator")
    leader, standby = (a, b) if lease["spec"]["holderIdentity"] == "operator-a" else (b, a)
    assert await standby.metric("modeladapter_reconcile_duration_seconds_count") == 0
    assert await leader.metric("modeladapter_reconcile_duration_seconds_count") > 0
    leader.kill()
    await sandbox.apply(adapter_manifest("second", replicas=1))
    await sandbox.phase("Running", "second", timeout=20)
    lease = await sandbox.kube.get(LEASES, "default", "modeladapter-operator")
    assert lease["spec"]["holderIdentity"] == ("operator-b" if leader is a else "operator-a")
    assert lease["spec"]["leaseTransitions"] >= 1


async def test_a_clean_stop_hands_the_lease_over_at_once(sandbox: Sandbox) -> None:
    await sandbox.add_pods(1)
    a = sandbox.spawn_operator(identity="operator-a")
    await sandbox.apply(adapter_manifest(replicas=1))
    await sandbox.phase("Running", timeout=20)
    b = sandbox.spawn_operator(identity="operator-b")
    await asyncio.sleep(1.0)
    assert await a.terminate() == 0
    lease = await sandbox.kube.get(LEASES, "default", "modeladapter-operator")
    assert lease["spec"]["holderIdentity"] in ("", "operator-b")
    await sandbox.eventually(lambda: _holder(sandbox, "operator-b"), timeout=10, what="operator-b to lead")
    del b


async def _metric_at_least(process: object, name: str, value: float) -> bool:
    try:
        return await process.metric(name) >= value  # type: ignore[attr-defined, no-any-return]
    except Exception:
        return False


async def _serving(process: object) -> bool:
    import httpx

    try:
        async with httpx.AsyncClient() as http:
            answer = await http.get(f"http://127.0.0.1:{process.probe_port}/readyz", timeout=2)  # type: ignore[attr-defined]
    except httpx.HTTPError:
        return False
    return answer.status_code == 200


async def _holder(sandbox: Sandbox, identity: str) -> bool:
    lease = await sandbox.kube.get(LEASES, "default", "modeladapter-operator")
    return bool(lease["spec"].get("holderIdentity") == identity)


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
    await sandbox.eventually(lambda: sandbox.serves(pod), what="the engine to hold the adapter")
    await first.stop()
    sandbox.operators.remove(first)
    await sandbox.delete()
    await sandbox.start_operator()
    await sandbox.eventually(lambda: sandbox.gone(), what="the deletion")
    assert "qwen-code-lora" not in sandbox.engine(pod).adapters, "the load written ahead was found and unloaded"
