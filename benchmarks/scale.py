"""How the operator's cost grows with the number of adapters: CPU-seconds, resident memory, apply → Running.

Adapters (`replicas: 1`) are added in steps over 20 pods; after each step, once all are Running, the
operator's CPU time and RSS are read from /proc and five more adapters are applied one at a time to time
apply → Running at that size. The operator re-verifies loaded adapters every 30 s (its production default),
so the CPU figures include that background work for the time the step took.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from benchmarks.latency import apply_to_running
from benchmarks.world import World, adapter_manifest


@dataclass
class Step:
    adapters: int
    cpu_seconds: float
    """The operator's CPU time since it started, all adapters Running."""
    rss_mb: float
    apply_seconds: float
    """Wall time to bring this step's new adapters to Running (applied all at once)."""
    single_p50_ms: float
    """apply → Running of one more adapter at this size (median of 5)."""


async def growth(levels: list[int], *, pods: int = 20) -> list[Step]:
    steps: list[Step] = []
    async with World(pods=pods) as world:
        operator = await world.start_operator()
        present = 0
        for level in levels:
            names = [f"scale-{n}" for n in range(present, level)]
            started = time.monotonic()
            for name in names:  # in order, as `kubectl apply -f dir/` would
                await world.apply(adapter_manifest(name, replicas=1))
            await world.until_all_running([f"scale-{n}" for n in range(level)], timeout=600)
            applied = time.monotonic() - started
            present = level
            cpu, rss = operator.cpu_seconds(), operator.rss_mb()
            probe = await apply_to_running(world, trials=5, prefix=f"probe-{level}")
            steps.append(Step(level, cpu, rss, applied, probe.p50))
    return steps


def per_adapter(steps: list[Step]) -> list[dict[str, float]]:
    """CPU-seconds and MB per adapter added, between consecutive steps (the first from zero)."""
    rows: list[dict[str, float]] = []
    previous = Step(0, 0.0, 0.0, 0.0, 0.0)
    for step in steps:
        added = step.adapters - previous.adapters
        rows.append({
            "adapters": step.adapters,
            "cpu_ms_per_adapter": 1000 * (step.cpu_seconds - previous.cpu_seconds) / added,
            "kb_per_adapter": 1024 * (step.rss_mb - previous.rss_mb) / added if previous.adapters else float("nan"),
        })  # fmt: skip
        previous = step
    return rows


def plot(steps: list[Step], path: str) -> None:
    """apply → Running (median) against the number of adapters already Running, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axis = pyplot.subplots(figsize=(6, 3.5))
    axis.plot([s.adapters for s in steps], [s.single_p50_ms for s in steps], marker="o")
    axis.set_xlabel("adapters already Running (20 pods)")
    axis.set_ylabel("apply → Running, p50 (ms)")
    axis.set_ylim(bottom=0)
    axis.grid(True, alpha=0.3)
    axis.set_title("modeladapter: latency against cluster size")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)
