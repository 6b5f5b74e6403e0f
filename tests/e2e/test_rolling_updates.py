"""A change of `artifactURL` rolls pod by pod and never serves from an endpoint that lacks the adapter.

A watcher samples the EndpointSlice and the engines every 20 ms while the update runs. The API server, the
engines and the operator share the test's event loop, so each sample (taken without an await) is one consistent
moment: every address the slice lists at that moment belongs to an engine that holds the adapter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from modeladapter.operator.audit.auditing import history, replay
from modeladapter.operator.audit.rendering import history_table
from modeladapter.operator.audit.reports import replay_table, state_document
from modeladapter.operator.kube.client import PODS
from modeladapter.sandbox.engine.adapter_files import write_peft_adapter
from modeladapter.sandbox.engine.faults import Fault
from modeladapter.sandbox.engine.runtime import SimulatedRuntimeSidecar
from tests.e2e.conftest import FAST, POD_LABELS, Raw, Sandbox, adapter_manifest

NAME = "qwen-code-lora"
LOAD_SECONDS = 0.15
"""Each simulated load takes this long, so the watcher sees every step of a rollout."""


@dataclass
class Watch:
    samples: int = 0
    fewest_listed: int | None = None
    violations: list[str] = field(default_factory=list)


@asynccontextmanager
async def watching(sandbox: Sandbox, *, every: float = 0.02) -> AsyncIterator[Watch]:
    watch = Watch()
    stop = asyncio.Event()

    def sample() -> None:
        found = sandbox.server.get("discovery.k8s.io/v1", "EndpointSlice", sandbox.namespace, NAME)
        if found is None:
            return
        listed = [
            address
            for endpoint in found.get("endpoints") or []
            if (endpoint.get("conditions") or {}).get("ready", True)
            for address in endpoint.get("addresses") or []
        ]
        watch.samples += 1
        watch.fewest_listed = len(listed) if watch.fewest_listed is None else min(watch.fewest_listed, len(listed))
        for address in listed:
            engine = sandbox.fleet.by_ip.get(address)
            if engine is None or NAME not in engine.adapters:
                watch.violations.append(f"sample {watch.samples}: {address} is listed without the adapter")

    async def run() -> None:
        while not stop.is_set():
            sample()
            await asyncio.sleep(every)

    task = asyncio.create_task(run())
    try:
        yield watch
    finally:
        stop.set()
        await task


def versions(sandbox: Sandbox, root: Path) -> tuple[str, str]:
    first = write_peft_adapter(root / "v1")
    second = write_peft_adapter(root / "v2", rank=4)
    return str(first), str(second)


async def three_pods_serving_the_old_version(sandbox: Sandbox, root: Path) -> tuple[list[str], str, str]:
    """Three pods serving version 1 of the adapter (every matching pod: updates go in place); the pods, and the
    paths of versions 1 and 2."""
    pods = await sandbox.add_pods(3)
    old, new = versions(sandbox, root)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(artifactURL=old))
    await sandbox.instances_ready(3)
    return pods, old, new


def slow_loads(sandbox: Sandbox, pods: list[str]) -> None:
    for pod in pods:
        sandbox.engine(pod).inject(Fault(delay=LOAD_SECONDS), route="load", times=None)


async def everywhere(sandbox: Sandbox, pods: list[str], path: str) -> bool:
    return all([await sandbox.serves(pod, path=path) for pod in pods])


async def progressing(sandbox: Sandbox, reason: str, *, timeout: float = 15.0) -> dict[str, object]:
    def condition(status: Raw) -> dict[str, object] | None:
        return next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Progressing" and c.get("reason") == reason),
            None,
        )

    async def found() -> dict[str, object] | None:
        return condition(await sandbox.status())

    return await sandbox.eventually(found, timeout=timeout, what=f"Progressing {reason}")


async def test_an_update_rolls_pod_by_pod_keeping_all_but_one_listed(sandbox: Sandbox, tmp_path: Path) -> None:
    pods, old, new = await three_pods_serving_the_old_version(sandbox, tmp_path)
    slow_loads(sandbox, pods)
    async with watching(sandbox) as watch:
        began = time.monotonic()
        await sandbox.apply(adapter_manifest(artifactURL=new))
        await progressing(sandbox, "UpdateComplete")
        took = time.monotonic() - began
    assert await everywhere(sandbox, pods, new)
    assert watch.violations == []
    assert watch.fewest_listed == 2, f"at least N-1 of 3 endpoints stay listed (fewest {watch.fewest_listed})"
    status = await sandbox.status()
    assert sorted(status["instances"]) == pods and status["phase"] == "Running"
    assert {p["artifactURL"] for p in status["placements"]} == {new}
    print(f"\nin place, 3 pods: {took:.2f} s, fewest endpoints {watch.fewest_listed}, {watch.samples} samples")


async def test_a_one_replica_adapter_with_a_free_pod_surges_and_always_has_an_endpoint(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    pods = await sandbox.add_pods(2)
    old, new = versions(sandbox, tmp_path)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(artifactURL=old, replicas=1))
    (serving,) = (await sandbox.instances_ready(1))["instances"]
    (free,) = [pod for pod in pods if pod != serving]
    slow_loads(sandbox, pods)
    async with watching(sandbox) as watch:
        began = time.monotonic()
        await sandbox.apply(adapter_manifest(artifactURL=new, replicas=1))
        await progressing(sandbox, "UpdateComplete")
        took = time.monotonic() - began
    assert watch.violations == []
    assert watch.fewest_listed == 1, "the only instance is replaced only once the new one serves"
    assert await sandbox.serves(free, path=new)
    await sandbox.eventually(lambda: sandbox.lacks(serving), what="the old instance to retire")
    assert (await sandbox.status())["instances"] == [free]
    print(f"\nsurge, 1 replica: {took:.2f} s, fewest endpoints {watch.fewest_listed}")


async def test_three_replicas_with_a_free_pod_surge_one_at_a_time(sandbox: Sandbox, tmp_path: Path) -> None:
    pods = await sandbox.add_pods(4)
    old, new = versions(sandbox, tmp_path)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(artifactURL=old, replicas=3))
    await sandbox.instances_ready(3)
    slow_loads(sandbox, pods)
    async with watching(sandbox) as watch:
        await sandbox.apply(adapter_manifest(artifactURL=new, replicas=3))
        await progressing(sandbox, "UpdateComplete")
    status = await sandbox.instances_ready(3)
    assert watch.violations == []
    assert watch.fewest_listed == 3, "a surge never takes an instance out before its replacement serves"
    assert await everywhere(sandbox, status["instances"], new)
    state = await sandbox.state()
    assert state.rollout is not None and not state.rollout.in_progress and not state.rollout.rolled_back


async def test_a_failing_new_version_halts_on_its_first_pod_and_a_fixed_url_resumes(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    pods, old, new = await three_pods_serving_the_old_version(sandbox, tmp_path)
    missing = str(tmp_path / "nowhere")
    async with watching(sandbox) as watch:
        await sandbox.apply(adapter_manifest(artifactURL=missing))
        halted = await progressing(sandbox, "UpdateFailed")
        assert halted["status"] == "False"
        await asyncio.sleep(0.5)  # time in which a rollout that spreads would take the next pod
        serving_old = [pod for pod in pods if await sandbox.serves(pod, path=old)]
        assert len(serving_old) == 2, "only the first pod was touched"
        (failed,) = set(pods) - set(serving_old)
        assert f"failed on pod {failed}" in str(halted["message"]) and "nowhere" in str(halted["message"])
        status = await sandbox.status()
        assert status["phase"] == "Running" and sorted(status["instances"]) == sorted(serving_old)
        warnings = [e for e in await sandbox.events() if e.get("reason") == "UpdateFailed"]
        assert warnings and warnings[0]["type"] == "Warning" and failed in warnings[0]["message"]
        await sandbox.apply(adapter_manifest(artifactURL=new))
        await progressing(sandbox, "UpdateComplete")
    assert await everywhere(sandbox, pods, new)
    assert watch.violations == [] and watch.fewest_listed == 2


async def test_setting_the_url_back_restores_the_old_version_everywhere(sandbox: Sandbox, tmp_path: Path) -> None:
    pods, old, _ = await three_pods_serving_the_old_version(sandbox, tmp_path)
    await sandbox.apply(adapter_manifest(artifactURL=str(tmp_path / "nowhere")))
    await progressing(sandbox, "UpdateFailed")
    await sandbox.apply(adapter_manifest(artifactURL=old))
    await progressing(sandbox, "RolledBack")
    await sandbox.eventually(lambda: everywhere(sandbox, pods, old), what="the old version on every pod")
    await sandbox.instances_ready(3)


async def test_an_operator_restarted_mid_rollout_does_not_reload_pods_already_done(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    pods = await sandbox.add_pods(3)
    old, new = versions(sandbox, tmp_path)
    operator = await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(artifactURL=old))
    await sandbox.instances_ready(3)
    for pod in pods:
        sandbox.engine(pod).inject(Fault(delay=1.0), route="load", times=None)
    await sandbox.apply(adapter_manifest(artifactURL=new))
    done = await sandbox.eventually(
        lambda: _first_done(sandbox, pods, new), timeout=10, what="the first pod to serve the new version"
    )
    await operator.stop()
    loads_before = {pod: _loads(sandbox, pod) for pod in pods}
    await sandbox.start_operator()
    await progressing(sandbox, "UpdateComplete", timeout=20)
    assert await everywhere(sandbox, pods, new)
    assert _loads(sandbox, done) == loads_before[done], f"{done} already served the new version"
    history = [e.payload.type for e in await sandbox.store.read((await sandbox.adapter())["metadata"]["uid"])]
    assert history.count("RolloutStarted") == 1 and history.count("RolloutFinished") == 1


async def _first_done(sandbox: Sandbox, pods: list[str], path: str) -> str | None:
    for pod in pods:
        if await sandbox.serves(pod, path=path):
            return pod
    return None


def _loads(sandbox: Sandbox, pod: str) -> int:
    return sum(1 for call in sandbox.engine(pod).calls if call.path == "/v1/load_lora_adapter")


async def test_deleting_an_adapter_mid_rollout_unloads_it_from_every_pod(sandbox: Sandbox, tmp_path: Path) -> None:
    pods, old, new = await three_pods_serving_the_old_version(sandbox, tmp_path)
    for pod in pods:
        sandbox.engine(pod).inject(Fault(delay=0.5), route="load", times=None)
    await sandbox.apply(adapter_manifest(artifactURL=new))
    await progressing(sandbox, "RollingUpdate")
    await sandbox.delete()
    await sandbox.eventually(sandbox.gone, timeout=15, what="the adapter to be deleted")
    for pod in pods:
        assert await sandbox.lacks(pod), f"{pod} still holds the adapter"


async def test_a_selector_change_mid_rollout_unloads_unselected_pods_and_updates_the_rest(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    pods, old, new = await three_pods_serving_the_old_version(sandbox, tmp_path)
    await sandbox.kube.patch(PODS, "default", pods[0], {"metadata": {"labels": {"zone": "a"}}})
    await sandbox.kube.patch(PODS, "default", pods[1], {"metadata": {"labels": {"zone": "a"}}})
    for pod in pods:
        sandbox.engine(pod).inject(Fault(delay=0.3), route="load", times=None)
    await sandbox.apply(adapter_manifest(artifactURL=new))
    await progressing(sandbox, "RollingUpdate")
    selector = adapter_manifest()["spec"]["podSelector"] | {
        "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]
    }
    await sandbox.apply(adapter_manifest(artifactURL=new, podSelector=selector))
    await progressing(sandbox, "UpdateComplete", timeout=20)
    await sandbox.eventually(lambda: sandbox.lacks(pods[2]), what="the unselected pod to be unloaded")
    assert await everywhere(sandbox, pods[:2], new)
    assert sorted((await sandbox.instances_ready(2))["instances"]) == sorted(pods[:2])


async def test_a_pod_lost_mid_rollout_leaves_and_the_rollout_finishes_on_the_others(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    pods, old, new = await three_pods_serving_the_old_version(sandbox, tmp_path)
    for pod in pods:
        sandbox.engine(pod).inject(Fault(delay=0.3), route="load", times=None)
    async with watching(sandbox) as watch:
        await sandbox.apply(adapter_manifest(artifactURL=new))
        await progressing(sandbox, "RollingUpdate")
        await sandbox.kube.delete(PODS, "default", pods[2])
        await progressing(sandbox, "UpdateComplete", timeout=20)
    assert await everywhere(sandbox, pods[:2], new)
    assert sorted((await sandbox.instances_ready(2))["instances"]) == sorted(pods[:2])
    assert watch.violations == []


async def test_max_surge_zero_updates_in_place_even_with_a_free_pod(sandbox: Sandbox, tmp_path: Path) -> None:
    pods = await sandbox.add_pods(2)
    old, new = versions(sandbox, tmp_path)
    await sandbox.start_operator()
    strategy = {"maxSurge": 0, "maxUnavailable": 1}
    await sandbox.apply(adapter_manifest(artifactURL=old, replicas=1, updateStrategy=strategy))
    (serving,) = (await sandbox.instances_ready(1))["instances"]
    slow_loads(sandbox, pods)
    async with watching(sandbox) as watch:
        await sandbox.apply(adapter_manifest(artifactURL=new, replicas=1, updateStrategy=strategy))
        await progressing(sandbox, "UpdateComplete")
    assert await sandbox.serves(serving, path=new), "the same pod, reloaded"
    assert watch.fewest_listed == 0 and watch.violations == [], "in place, one replica has one gap, never a lie"


async def _runtime_pod(sandbox: Sandbox, *, dev_mode: bool, tmp_path: Path) -> tuple[str, SimulatedRuntimeSidecar]:
    containers = [
        {"name": "vllm-openai", "image": "vllm/vllm-openai:v0.32.0", "ports": [{"containerPort": 8000}]},
        {"name": "aibrix-runtime", "image": "aibrix/runtime:v0.8.0", "ports": [{"containerPort": 8080}]},
    ]
    await sandbox.kubelet.create_pod(
        "with-runtime-0",
        "default",
        labels=dict(POD_LABELS),
        containers=containers,
        since=datetime.now(UTC) - timedelta(minutes=5),
    )
    engine = sandbox.engine("with-runtime-0")
    await engine.stop()  # vLLM's development routes exist only if it started with them
    engine.dev_mode = dev_mode
    await engine.start()
    first, second = versions(sandbox, tmp_path)
    sidecar = SimulatedRuntimeSidecar(engine, artifacts={S3_V1: first, S3_V2: second}, downloads=tmp_path / "downloads")
    await sidecar.start()
    return "with-runtime-0", sidecar


S3_V1, S3_V2 = "s3://adapters/sql-lora/v1/", "s3://adapters/sql-lora/v2/"


async def test_behind_the_runtime_a_new_version_in_the_same_folder_resets_the_engines_prefix_cache(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    pod, sidecar = await _runtime_pod(sandbox, dev_mode=True, tmp_path=tmp_path)
    try:
        await sandbox.start_operator(replace(FAST, runtime_sidecar=True))
        await sandbox.apply(adapter_manifest(artifactURL=S3_V1))
        await sandbox.instances_ready(1)
        engine = sandbox.engine(pod)
        folder = str(sidecar.folder(NAME))
        assert engine.adapters[NAME].path == folder
        resets = engine.prefix_cache.resets
        await sandbox.apply(adapter_manifest(artifactURL=S3_V2))
        await progressing(sandbox, "UpdateComplete")
        assert engine.adapters[NAME].path == folder, "the same path: only a reset keeps old blocks from answering"
        assert engine.prefix_cache.resets == resets + 1
    finally:
        await sidecar.stop()


async def test_behind_the_runtime_an_engine_without_dev_mode_halts_the_update_and_says_which_flag(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    pod, sidecar = await _runtime_pod(sandbox, dev_mode=False, tmp_path=tmp_path)
    try:
        await sandbox.start_operator(replace(FAST, runtime_sidecar=True))
        await sandbox.apply(adapter_manifest(artifactURL=S3_V1))
        await sandbox.instances_ready(1)
        await sandbox.apply(adapter_manifest(artifactURL=S3_V2))
        halted = await progressing(sandbox, "UpdateFailed")
        assert "VLLM_SERVER_DEV_MODE=1" in str(halted["message"]) and pod in str(halted["message"])
        assert await sandbox.lacks(pod), "a copy that may answer from the old version's blocks is not left loaded"
    finally:
        await sidecar.stop()


async def test_history_tells_the_rollout_and_replay_says_which_version_each_pod_served(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    pods = await sandbox.add_pods(2)
    old, new = versions(sandbox, tmp_path)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(artifactURL=old))
    await sandbox.instances_ready(2)
    slow_loads(sandbox, pods)
    await sandbox.apply(adapter_manifest(artifactURL=new))
    await progressing(sandbox, "UpdateComplete")
    events = await sandbox.store.read((await sandbox.adapter())["metadata"]["uid"])
    (first_update,) = [e for e in events if e.payload.type == "InstanceUpdated"][:1]
    (first,) = [e.payload.pod for e in events if e.payload.type == "InstanceUpdated"][:1]
    (second,) = set(pods) - {first}

    told = history_table(await history(sandbox.store, namespace="default", name=NAME, now=datetime.now(UTC)))
    assert f"rollout to {new} from {old}" in told
    assert f"pod {first} updated in place: {old} -> {new}" in told
    assert f"rollout finished: {new} on 2 instance(s)" in told

    moment = await replay(sandbox.store, namespace="default", name=NAME, at=first_update.recorded_at)
    placements = {p["pod"]: p for p in state_document(moment.state)["placements"]}
    assert placements[first]["serves"] == new, "mid-rollout: the updated pod serves the new version"
    assert placements[second]["serves"] == old or placements[second]["replacing"] == old
    table = replay_table(moment)
    assert "in progress" in table and new in next(line for line in table.splitlines() if line.startswith(f"  {first}"))
