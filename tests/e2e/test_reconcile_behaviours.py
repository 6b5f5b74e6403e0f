"""Everything DESIGN §4 promises, one behaviour per test, on the emulator with three simulated vLLM pods."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from modeladapter.fsm.events import LoadFailed, PodSwitched
from modeladapter.fsm.phases import Phase, PlacementState
from modeladapter.operator.kube.client import MODELADAPTERS, SERVICES
from modeladapter.sandbox.engine.faults import Fault
from modeladapter.store.queries import phase_history
from tests.e2e.conftest import FAST, Sandbox, adapter_manifest


@pytest.mark.parametrize("replicas", [1, None], ids=["replicas-1", "replicas-omitted"])
async def test_pods_must_be_ready_stable_and_not_terminating(sandbox: Sandbox, replicas: int | None) -> None:
    """Only a pod Ready for the stability window gets the adapter; until then the adapter says why it waits."""
    await sandbox.add_pods(1, ready_since=datetime.now(UTC))
    await sandbox.start_operator(replace(FAST, stability_window=timedelta(seconds=1.5)))
    await sandbox.apply(adapter_manifest(replicas=replicas))
    waiting = await sandbox.phase("Pending")
    scheduled = {c["type"]: c for c in waiting["conditions"]}.get("Scheduled")
    assert scheduled is not None and scheduled["reason"] == "WaitingForStablePods", waiting
    running = await sandbox.phase("Running", timeout=10)
    assert running["instances"] == ["qwen-coder-1-5b-instruct-0"]


async def test_a_terminating_or_unready_pod_is_never_chosen(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(3)
    await sandbox.kubelet.mark_not_ready(pods[0])
    await sandbox.kubelet.terminate(pods[1])
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest())
    status = await sandbox.phase("Running")
    assert status["instances"] == [pods[2]]
    assert (status["candidates"], status["desiredReplicas"]) == (1, 1)


async def test_replicas_omitted_means_every_healthy_pod_and_n_means_exactly_n(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(3)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest("everywhere"))
    await sandbox.apply(adapter_manifest("two", replicas=2))
    everywhere = await sandbox.phase("Running", "everywhere")
    two = await sandbox.eventually(
        lambda: _status_with(sandbox, "two", lambda s: s.get("readyReplicas") == 2), what="two replicas"
    )
    assert sorted(everywhere["instances"]) == pods and everywhere["desiredReplicas"] == 3
    assert len(set(two["instances"])) == 2 and two["desiredReplicas"] == 2
    # One more pod: the everywhere adapter follows it; the two-replica one stays at two.
    (extra,) = await sandbox.add_pods(1, prefix="late")
    await sandbox.eventually(
        lambda: _status_with(sandbox, "everywhere", lambda s: extra in s.get("instances", [])), what="the new pod"
    )
    await asyncio.sleep(0.3)
    assert len((await sandbox.status("two"))["instances"]) == 2


async def test_least_adapters_spreads_and_bin_pack_packs(sandbox: Sandbox) -> None:
    await sandbox.add_pods(3)
    await sandbox.start_operator()
    for index in range(3):
        await sandbox.apply(adapter_manifest(f"spread-{index}", replicas=1, schedulerName="least-adapters"))
        await sandbox.phase("Running", f"spread-{index}")
    spread = {(await sandbox.status(f"spread-{i}"))["instances"][0] for i in range(3)}
    assert len(spread) == 3, "least-adapters puts one adapter on each pod"
    for index in range(2):
        await sandbox.apply(adapter_manifest(f"pack-{index}", replicas=1, schedulerName="bin-pack"))
        await sandbox.phase("Running", f"pack-{index}")
    packed = {(await sandbox.status(f"pack-{i}"))["instances"][0] for i in range(2)}
    assert len(packed) == 1, "bin-pack puts both on the fullest pod"


async def test_a_pod_at_capacity_is_never_chosen(sandbox: Sandbox) -> None:
    await sandbox.kubelet.create_pod(
        "small",
        "default",
        labels={"model.aibrix.ai/name": "qwen-coder-1-5b-instruct", "adapter.model.aibrix.ai/enabled": "true"},
        annotations={"adapter.model.aibrix.ai/capacity": "1"},
        since=datetime.now(UTC) - timedelta(minutes=5),
    )
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest("first", replicas=1))
    await sandbox.phase("Running", "first")
    await sandbox.apply(adapter_manifest("second", replicas=1))
    pending = await sandbox.phase("Pending", "second")
    scheduled = {c["type"]: c for c in pending["conditions"]}["Scheduled"]
    assert (scheduled["status"], scheduled["reason"]) == ("False", "InsufficientCapacity")
    assert "small" in scheduled["message"]


async def test_retries_follow_the_documented_backoff_and_are_persisted(sandbox: Sandbox) -> None:
    """5 attempts on a pod, waits of 1, 2, 4, 8 times the base in between, all in the log and the annotations."""
    (pod,) = await sandbox.add_pods(1)
    sandbox.engine(pod).inject(Fault(status=503), route="load", times=3)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    await sandbox.phase("Running", timeout=10)
    state = await sandbox.state()
    uid = state.stream_id
    assert uid is not None
    failures = [e for e in await sandbox.store.read(uid) if isinstance(e.payload, LoadFailed)]
    assert [f.payload.attempt for f in failures] == [1, 2, 3]
    base = FAST.backoff.base
    assert [f.payload.retry_at - f.recorded_at for f in failures] == [base, base * 2, base * 4]
    assert all(f.payload.retriable for f in failures)


async def test_a_slow_failure_is_recorded_when_it_happened_and_its_backoff_counts_from_then(sandbox: Sandbox) -> None:
    """An engine that takes 0.6 s to fail: the failure's time is the answer's, and the wait starts after it."""
    (pod,) = await sandbox.add_pods(1)
    sandbox.engine(pod).inject(Fault(delay=0.6, status=503), route="load", times=1)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    await sandbox.phase("Running", timeout=10)
    uid = (await sandbox.state()).stream_id
    assert uid is not None
    recorded = await sandbox.store.read(uid)
    started = next(e for e in recorded if e.payload.type == "LoadStarted")
    failed = next(e for e in recorded if isinstance(e.payload, LoadFailed))
    assert failed.recorded_at - started.recorded_at >= timedelta(seconds=0.6)
    assert failed.payload.retry_at == failed.recorded_at + FAST.backoff.base


async def test_retry_annotations_mirror_a_retrying_placement(sandbox: Sandbox) -> None:
    from dataclasses import replace

    from modeladapter.fsm.backoff import BackoffPolicy

    (pod,) = await sandbox.add_pods(1)
    sandbox.engine(pod).inject(Fault(status=503), route="load", times=None)
    await sandbox.start_operator(replace(FAST, backoff=BackoffPolicy.scaled(0.5)))
    await sandbox.apply(adapter_manifest(replicas=1))

    async def annotated() -> dict[str, str] | None:
        annotations = (await sandbox.adapter())["metadata"].get("annotations") or {}
        count = annotations.get(f"adapter.model.aibrix.ai/retry-count.{pod}")
        return annotations if count and int(count) >= 2 else None

    annotations = await sandbox.eventually(annotated, what="retry annotations")
    assert datetime.fromisoformat(annotations[f"adapter.model.aibrix.ai/last-retry-time.{pod}"].replace("Z", "+00:00"))
    sandbox.engine(pod).clear_faults()
    await sandbox.phase("Running", timeout=15)
    await sandbox.eventually(
        lambda: _no_retry_annotations(sandbox), what="the retry annotations to go once the pod loaded"
    )


async def test_a_non_retriable_error_switches_pods_at_once_and_the_switch_is_an_event(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(2)
    await sandbox.start_operator()
    # The first pod's engine refuses the key: authentication is not worth a retry on that pod.
    sandbox.engine(pods[0]).inject(Fault(status=401), route="load", times=None)
    sandbox.engine(pods[1]).inject(Fault(status=401), route="load", times=None)
    await sandbox.apply(adapter_manifest(replicas=1))
    failed = await sandbox.phase("Failed")
    ready = {c["type"]: c for c in failed["conditions"]}["Ready"]
    assert ready["reason"] == "ModelAdapterLoadingError"
    assert ready["message"].startswith("Loading failed on all pods: pod ")
    state = await sandbox.state()
    assert {p.pod: p.attempts for p in state.placements} == {pods[0]: 1, pods[1]: 1}, "no retry on the same pod"
    uid = state.stream_id
    assert uid is not None
    assert any(isinstance(e.payload, PodSwitched) for e in await sandbox.store.read(uid))


async def test_after_five_failed_attempts_the_adapter_switches_pods_with_a_warning(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(2)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    status = await sandbox.phase("Running")
    first = status["instances"][0]
    other = next(p for p in pods if p != first)
    # Make the serving pod's engine lose the adapter and refuse every load from now on.
    sandbox.engine(first).inject(Fault(status=503), route="load", times=None)
    sandbox.engine(first).evict("qwen-code-lora")
    moved = await sandbox.eventually(
        lambda: _status_with(sandbox, "qwen-code-lora", lambda s: s.get("instances") == [other]),
        timeout=15,
        what="the switch",
    )
    assert moved["phase"] == "Running"
    warnings = [e for e in await sandbox.events() if e["reason"] == "MaxRetriesExceeded"]
    assert warnings and warnings[0]["type"] == "Warning" and first in warnings[0]["message"]
    state = await sandbox.state()
    exhausted = state.placement(first)
    assert exhausted is not None and exhausted.state is PlacementState.EXHAUSTED and exhausted.attempts == 5


async def test_a_deleted_pod_leaves_the_instances_at_once_and_the_adapter_moves(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(2)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    (serving,) = (await sandbox.phase("Running"))["instances"]
    other = next(p for p in pods if p != serving)
    await sandbox.kubelet.delete(serving)
    moved = await sandbox.eventually(
        lambda: _status_with(
            sandbox, "qwen-code-lora", lambda s: s.get("instances") == [other] and s.get("phase") == "Running"
        ),
        what="the move",
    )
    _, endpoint_slice = await sandbox.service_and_slice()
    assert [e["addresses"] for e in endpoint_slice["endpoints"]] == [[sandbox.pod_ip(other)]]
    assert moved["readyReplicas"] == 1


async def test_an_unhealthy_pod_leaves_the_instances_at_once(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(2)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest())
    await sandbox.eventually(
        lambda: _status_with(sandbox, "qwen-code-lora", lambda s: s.get("readyReplicas") == 2), what="two instances"
    )
    await sandbox.kubelet.mark_not_ready(pods[0])
    status = await sandbox.eventually(
        lambda: _status_with(sandbox, "qwen-code-lora", lambda s: s.get("instances") == [pods[1]]), what="one instance"
    )
    assert status["phase"] == "Running"


async def test_an_engine_eviction_or_restart_is_detected_and_repaired(sandbox: Sandbox) -> None:
    (pod,) = await sandbox.add_pods(1)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    await sandbox.phase("Running")
    engine = sandbox.engine(pod)
    engine.evict("qwen-code-lora")
    await sandbox.eventually(lambda: _engine_has(engine, "qwen-code-lora"), what="the reload after an eviction")
    await engine.restart()
    await sandbox.eventually(lambda: _engine_has(engine, "qwen-code-lora"), what="the reload after a restart")

    async def reload_recorded() -> bool:
        # The engine answers the load before the operator has appended its outcome.
        placement = (await sandbox.state()).placement(pod)
        triggers = [t.trigger for t in await phase_history(sandbox.store, namespace="default", name="qwen-code-lora")]
        return placement is not None and placement.state is PlacementState.LOADED and triggers[-1] == "service_bound"

    await sandbox.eventually(reload_recorded, what="the reload recorded in the log, and the adapter Running again")


async def test_an_artifact_change_reloads_every_placement(sandbox: Sandbox) -> None:
    from modeladapter.sandbox.engine.adapter_files import write_peft_adapter

    pods = await sandbox.add_pods(2)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest())
    await sandbox.eventually(
        lambda: _status_with(sandbox, "qwen-code-lora", lambda s: s.get("readyReplicas") == 2), what="two instances"
    )
    new_path = write_peft_adapter(sandbox.kubeconfig.parent / "adapters" / "v2")
    await sandbox.apply(adapter_manifest(artifactURL=str(new_path)))
    for pod in pods:
        await sandbox.eventually(lambda pod=pod: _engine_path(sandbox, pod, str(new_path)), what=f"{pod} reloaded")
    status = await sandbox.eventually(
        lambda: _status_with(
            sandbox, "qwen-code-lora", lambda s: s.get("observedGeneration") == 2 and s.get("phase") == "Running"
        ),
        what="generation 2 Running",
    )
    assert sorted(status["instances"]) == pods


async def test_a_selector_change_unloads_from_pods_that_no_longer_match(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(2)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest())
    await sandbox.eventually(
        lambda: _status_with(sandbox, "qwen-code-lora", lambda s: s.get("readyReplicas") == 2), what="two instances"
    )
    # Only pods of zone a from now on; label one pod so.
    pod = sandbox.server.get("v1", "Pod", "default", pods[0])
    assert pod is not None
    await sandbox.kube.patch(
        __import__("modeladapter.operator.kube.client", fromlist=["PODS"]).PODS,
        "default",
        pods[0],
        {"metadata": {"labels": {"zone": "a"}}},
    )
    selector = {
        "matchLabels": {"model.aibrix.ai/name": "qwen-coder-1-5b-instruct"},
        "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}],
    }
    await sandbox.apply(adapter_manifest(podSelector=selector))
    await sandbox.eventually(
        lambda: _status_with(sandbox, "qwen-code-lora", lambda s: s.get("instances") == [pods[0]]), what="one instance"
    )
    await sandbox.eventually(lambda: _engine_lacks(sandbox.engine(pods[1]), "qwen-code-lora"), what="the unload")


async def test_deletion_unloads_everywhere_then_removes_the_finalizer(sandbox: Sandbox) -> None:
    pods = await sandbox.add_pods(3)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest())
    await sandbox.eventually(
        lambda: _status_with(sandbox, "qwen-code-lora", lambda s: s.get("readyReplicas") == 3), what="three instances"
    )
    assert "adapter.model.aibrix.ai/finalizer" in (await sandbox.adapter())["metadata"]["finalizers"]
    uid = (await sandbox.adapter())["metadata"]["uid"]
    await sandbox.kubelet.delete(pods[2])  # a pod that is gone counts as unloaded
    await sandbox.delete()
    await sandbox.eventually(lambda: sandbox.gone(), what="the ModelAdapter to be gone")
    for pod in pods[:2]:
        assert "qwen-code-lora" not in sandbox.engine(pod).adapters
    history = await phase_history(sandbox.store, namespace="default", name="qwen-code-lora")
    assert history[-1].to_phase is Phase.TERMINATING
    (stream,) = await sandbox.store.streams(name="qwen-code-lora")
    assert stream.stream_id == uid and stream.finalized_at is not None


async def test_deletion_gives_up_on_an_unreachable_pod_after_the_deadline(sandbox: Sandbox) -> None:
    (pod,) = await sandbox.add_pods(1)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    await sandbox.phase("Running")
    await sandbox.engine(pod).refuse_connections()
    await sandbox.delete()
    await sandbox.eventually(lambda: sandbox.gone(), timeout=15, what="deletion within the unload deadline")


async def test_status_is_truthful_instances_only_while_the_engine_lists_the_adapter(sandbox: Sandbox) -> None:
    (pod,) = await sandbox.add_pods(1)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    await sandbox.phase("Running")
    engine = sandbox.engine(pod)
    # The engine loses the adapter and cannot get it back: the status must stop claiming it.
    engine.inject(Fault(status=503), route="load", times=None)
    engine.evict("qwen-code-lora")
    status = await sandbox.eventually(
        lambda: _status_with(sandbox, "qwen-code-lora", lambda s: s.get("instances") == []), what="an honest status"
    )
    assert status["phase"] in ("Loading", "Failed")
    assert {c["type"]: c for c in status["conditions"]}["Ready"]["status"] == "False"
    _, endpoint_slice = await sandbox.service_and_slice()
    assert endpoint_slice.get("endpoints") in ([], None)


# --- helpers -----------------------------------------------------------------------------------------------


async def _status_with(sandbox: Sandbox, name: str, check: object) -> dict[str, object] | None:
    status = await sandbox.status(name)
    return status if check(status) else None  # type: ignore[operator]


async def _no_retry_annotations(sandbox: Sandbox) -> bool:
    annotations = (await sandbox.adapter())["metadata"].get("annotations") or {}
    return not any(key.startswith("adapter.model.aibrix.ai/retry-count") for key in annotations)


async def _engine_has(engine: object, name: str) -> bool:
    return name in engine.adapters  # type: ignore[attr-defined]


async def _engine_lacks(engine: object, name: str) -> bool:
    return name not in engine.adapters  # type: ignore[attr-defined]


async def _engine_path(sandbox: Sandbox, pod: str, path: str) -> bool:
    loaded = sandbox.engine(pod).adapters.get("qwen-code-lora")
    return loaded is not None and loaded.path == path


async def test_a_status_written_by_someone_else_is_put_right_at_once(sandbox: Sandbox) -> None:
    # Verification is minutes away: only the watch can bring the overwrite to the operator's attention.
    await sandbox.add_pods(2)
    await sandbox.start_operator(replace(FAST, verify_interval=timedelta(minutes=10)))
    await sandbox.apply(adapter_manifest(replicas=2))
    truth = await sandbox.eventually(
        lambda: _status_with(sandbox, "qwen-code-lora", lambda s: s.get("readyReplicas") == 2), what="two instances"
    )
    await sandbox.kube.patch(
        MODELADAPTERS,
        "default",
        "qwen-code-lora",
        {"status": {"phase": "Failed", "readyReplicas": 0, "instances": []}},
        subresource="status",
    )
    restored = await sandbox.eventually(
        lambda: _status_with(sandbox, "qwen-code-lora", lambda s: s.get("phase") == "Running" and s.get("readyReplicas") == 2),
        timeout=3, what="the operator's status back",
    )  # fmt: skip
    assert restored["instances"] == truth["instances"]
    # Its own writes coming back do not wake it: the adapter settles instead of being reconciled in a loop.
    settled = sandbox.operators[0].controller.reconciles
    await asyncio.sleep(1)
    assert sandbox.operators[0].controller.reconciles - settled <= 1


async def test_a_service_of_the_name_owned_by_someone_else_is_left_alone_and_said_so(sandbox: Sandbox) -> None:
    await sandbox.add_pods(1)
    theirs = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "qwen-code-lora"},
              "spec": {"ports": [{"port": 80}], "selector": {"app": "theirs"}}}  # fmt: skip
    await sandbox.kube.create(SERVICES, "default", theirs)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    status = await sandbox.phase("Bound")

    async def conflict_told() -> list[dict[str, object]] | None:
        found = [e for e in await sandbox.events() if e["reason"] == "ServiceConflict"]
        return found or None

    (event,) = await sandbox.eventually(conflict_told, what="a ServiceConflict Event")
    assert event["type"] == "Warning" and "Service default/qwen-code-lora" in str(event["message"])
    assert status["instances"] == ["qwen-coder-1-5b-instruct-0"]
    service = await sandbox.kube.get(SERVICES, "default", "qwen-code-lora")
    assert service["spec"]["selector"] == {"app": "theirs"} and not service["metadata"].get("ownerReferences")
