"""How long the operator takes, from `kubectl apply` to Running, and from a lost pod back to Running.

Every figure is measured against `modeladapter run` as a process (see `benchmarks.world`), with simulated
engines that answer at once unless a load delay is set.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from benchmarks.world import ARTIFACT, NAMESPACE, POD_LABELS, World, adapter_manifest


@dataclass
class Latencies:
    milliseconds: list[float]

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.milliseconds)
        index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
        return ordered[index]

    @property
    def p50(self) -> float:
        return statistics.median(self.milliseconds)

    @property
    def p99(self) -> float:
        return self.percentile(0.99)


async def apply_to_running(world: World, *, trials: int, prefix: str, artifact: str = ARTIFACT) -> Latencies:
    """One adapter at a time into an otherwise idle cluster: apply, time until Running, delete, wait until gone."""
    timings: list[float] = []
    for trial in range(trials):
        name = f"{prefix}-{trial}"
        started = time.monotonic()
        await world.apply(adapter_manifest(name, replicas=1, artifact=artifact))
        running = await world.until(lambda: world.running(name), timeout=30, what=f"{name} to run")
        timings.append((running - started) * 1000)
        await world.delete_adapter(name)
        await world.until(
            lambda: world.server.get("model.aibrix.ai/v1alpha1", "ModelAdapter", NAMESPACE, name) is None,
            timeout=30, what=f"{name} to be finalized",
        )  # fmt: skip
    return Latencies(timings)


async def single(*, trials: int) -> Latencies:
    async with World(pods=10) as world:
        await world.start_operator()
        await apply_to_running(world, trials=3, prefix="warm-up")
        return await apply_to_running(world, trials=trials, prefix="single")


async def overhead(*, trials: int, load_seconds: float = 0.2) -> list[float]:
    """(apply → Running) / the engine's load time, per trial, with engines that take `load_seconds` per load."""
    async with World(pods=10, load_delay=load_seconds) as world:
        await world.start_operator()
        await apply_to_running(world, trials=2, prefix="warm-up")
        found = await apply_to_running(world, trials=trials, prefix="slow")
        return [ms / (load_seconds * 1000) for ms in found.milliseconds]


async def burst(*, adapters: int, pods: int, replicas: int = 2) -> float:
    """Seconds from the first apply of `adapters` adapters, all at once, until every one is Running."""
    async with World(pods=pods) as world:
        await world.start_operator()
        names = [f"burst-{n}" for n in range(adapters)]
        started = time.monotonic()
        await asyncio.gather(*(world.apply(adapter_manifest(name, replicas=replicas)) for name in names))
        done = await world.until_all_running(names, replicas=replicas, timeout=300)
        return done - started


async def repair(*, trials: int) -> Latencies:
    """A serving pod is deleted: milliseconds until the adapter is Running again, on another pod."""
    async with World(pods=10) as world:
        assert world.kubelet is not None
        await world.start_operator()
        await world.apply(adapter_manifest("repaired", replicas=1))
        await world.until(lambda: world.running("repaired"), timeout=30, what="repaired to run")
        timings: list[float] = []
        for trial in range(trials):
            (serving,) = world.status("repaired")["instances"]

            def moved() -> bool:
                status = world.status("repaired")
                return (
                    status.get("phase") == "Running"
                    and status.get("readyReplicas") == 1
                    and serving not in (status.get("instances") or [serving])
                )

            started = time.monotonic()
            await world.kubelet.delete(serving, NAMESPACE)
            done = await world.until(moved, timeout=30, what="the adapter to move")
            timings.append((done - started) * 1000)
            # A ReplicaSet would replace the pod: keep the cluster at its size (at the freed address).
            since = datetime.now(UTC) - timedelta(minutes=5)
            await world.kubelet.create_pod(f"{serving}-r{trial}", NAMESPACE, labels=POD_LABELS, since=since)
        return Latencies(timings)
