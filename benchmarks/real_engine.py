"""What the operator adds on top of a real vLLM 0.32 (CPU, the real-engine lane of `.ci/prepare/30-vllm`).

Per trial: the engine's own load time, measured by calling its `/v1/load_lora_adapter` directly (and unloading
again), then apply → Running of a ModelAdapter with the same artifact through the operator. The overhead is
the difference of the medians.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta

import httpx

from benchmarks.latency import apply_to_running
from benchmarks.world import NAMESPACE, POD_LABELS, World
from modeladapter.sandbox.engine.vllm_lane import Lane, VllmServer

POD_IP = "127.0.9.250"


class LaneNotPrepared(RuntimeError):
    pass


async def engine_load_ms(server: VllmServer, artifact: str, name: str) -> float:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as http:
        started = time.perf_counter()
        answer = await http.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": artifact})
        elapsed = (time.perf_counter() - started) * 1000
        answer.raise_for_status()
        (await http.post("/v1/unload_lora_adapter", json={"lora_name": name})).raise_for_status()
    return elapsed


async def real_overhead(*, trials: int) -> dict[str, float]:
    lane = Lane()
    problem = lane.problem()
    if problem is not None:
        raise LaneNotPrepared(problem)
    server = VllmServer(POD_IP, 8000, lane=lane)
    await asyncio.to_thread(server.start)
    try:
        artifact = str(lane.adapter("lora-a"))
        async with World(pods=0) as world:
            assert world.kubelet is not None
            since = datetime.now(UTC) - timedelta(minutes=5)
            await world.kubelet.create_pod("real-vllm-0", NAMESPACE, labels=POD_LABELS, ip=POD_IP, since=since)
            await world.start_operator()
            engine: list[float] = []
            operator: list[float] = []
            await engine_load_ms(server, artifact, "warm-up")
            for trial in range(trials):
                engine.append(await engine_load_ms(server, artifact, f"direct-{trial}"))
                found = await apply_to_running(world, trials=1, prefix=f"real-{trial}", artifact=artifact)
                operator.extend(found.milliseconds)
    finally:
        await asyncio.to_thread(server.stop)
    engine_ms, operator_ms = statistics.median(engine), statistics.median(operator)
    return {
        "engine_load_ms": engine_ms,
        "apply_to_running_ms": operator_ms,
        "real_overhead_ms": operator_ms - engine_ms,
    }
