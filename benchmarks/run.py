"""Every benchmark of the project, one after the other: a table for people, then ONE line of JSON.

    .venv/bin/python benchmarks/run.py            # the full figures (about 10 minutes, real vLLM included)
    .venv/bin/python benchmarks/run.py --quick    # under 3 minutes, at smaller scale; what .ci/run runs

Targets are those of the performance issue; the table says whether each was met. Timing never makes this
script fail: it exits non-zero only when a benchmark could not run at all (a bug, or the real-vLLM lane not
prepared in full mode). In quick mode a key measured only at full scale is `null`, and the quick-scale figure
is reported under its own key (`history_ms_100k`, `rss_mb_100`); nothing is extrapolated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a plain script: `benchmarks` is imported from the repository
    sys.path.insert(0, str(REPO))

from benchmarks import gateway, latency, load_inplace, log, real_engine, scale  # noqa: E402

TARGETS: dict[str, tuple[str, float]] = {
    "single_p50_ms": ("<=", 100),
    "single_p99_ms": ("<=", 300),
    "burst_200_s": ("<=", 20),
    "repair_p50_ms": ("<=", 500),
    "overhead_ratio": ("<=", 1.5),
    "append_per_s_sqlite": (">=", 2000),
    "append_per_s_postgres": (">=", 1000),
    "fold_per_s": (">=", 200_000),
    "history_ms": ("<=", 20),
    "rss_mb_1000": ("<=", 300),
    "real_overhead_ms": ("<=", 500),
    "gateway_follow_p95_ms": ("<=", 1000),
}


class Run:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.figures: dict[str, Any] = dict.fromkeys(TARGETS)
        self.extra: dict[str, Any] = {}
        self.failed: list[str] = []
        self.directory = tempfile.mkdtemp(prefix="modeladapter-bench-")

    async def section(self, title: str, work: Callable[[], Awaitable[None]]) -> None:
        print(f"\n## {title}", flush=True)
        started = time.monotonic()
        try:
            await work()
        except Exception as error:  # report and go on: one broken benchmark must not hide the others
            self.failed.append(title)
            print(f"FAILED: {type(error).__name__}: {error}", flush=True)
            traceback.print_exc(file=sys.stdout)
        print(f"({time.monotonic() - started:.1f} s)", flush=True)

    def report(self, key: str, value: float, unit: str = "") -> None:
        target = TARGETS.get(key)
        if key in self.figures:
            self.figures[key] = round(value, 3)
        else:
            self.extra[key] = round(value, 3)
        verdict = ""
        if target is not None:
            sense, limit = target
            met = value <= limit if sense == "<=" else value >= limit
            verdict = f"target {sense} {limit:g}: {'met' if met else 'NOT MET'}"
        print(f"  {key:<28} {value:>12,.2f} {unit:<10} {verdict}", flush=True)

    # --- the benchmarks ---------------------------------------------------------------------------------

    async def single(self) -> None:
        found = await latency.single(trials=15 if self.quick else 50)
        self.report("single_p50_ms", found.p50, "ms")
        self.report("single_p99_ms", found.p99, "ms")

    async def burst(self) -> None:
        self.report("burst_200_s", await latency.burst(adapters=200, pods=20), "s")

    async def repair(self) -> None:
        found = await latency.repair(trials=10 if self.quick else 30)
        self.report("repair_p50_ms", found.p50, "ms")

    async def overhead(self) -> None:
        ratios = await latency.overhead(trials=8 if self.quick else 30)
        self.report("overhead_ratio", sorted(ratios)[len(ratios) // 2], "x 200 ms")

    async def appends(self) -> None:
        for backend in ("sqlite", "postgres"):
            url = await log.fresh_database(backend, self.directory)
            try:
                rate = await log.appends_per_second(url, seconds=3 if self.quick else 10)
            finally:
                await log.drop(url)
            self.report(f"append_per_s_{backend}", rate, "batches/s")

    async def fold(self) -> None:
        self.report("fold_per_s", log.folds_per_second(events=100_000 if self.quick else 1_000_000), "events/s")

    async def history(self) -> None:
        events = 100_000 if self.quick else 1_000_000
        for backend in ("sqlite", "postgres"):
            url = await log.fresh_database(backend, self.directory)
            try:
                big = await log.build_big_log(url, events=events)
                timings = await log.history_ms(big, trials=20)
            finally:
                await log.drop(url)
            print(f"  ({backend}: a log of {big.events:,} events built in {big.build_seconds:.1f} s)")
            suffix = "" if backend == "sqlite" else "_postgres"
            key = "history_ms" if events == 1_000_000 else "history_ms_100k"
            self.report(f"{key}{suffix}", log.median(timings), "ms")

    async def growth(self) -> None:
        levels = [50, 100] if self.quick else [100, 500, 1000]
        steps = await scale.growth(levels)
        print(f"  {'adapters':>8} {'cpu s':>8} {'rss MB':>8} {'applied in s':>13} {'apply->Running p50 ms':>22}")
        for step in steps:
            print(f"  {step.adapters:>8} {step.cpu_seconds:>8.1f} {step.rss_mb:>8.1f} {step.apply_seconds:>13.1f} "
                  f"{step.single_p50_ms:>22.1f}")  # fmt: skip
        for row in scale.per_adapter(steps):
            memory = "" if math.isnan(row["kb_per_adapter"]) else f", {row['kb_per_adapter']:.1f} KB/adapter"
            print(f"  up to {row['adapters']:.0f}: {row['cpu_ms_per_adapter']:.1f} CPU-ms/adapter{memory}")
        last = steps[-1]
        self.report(f"rss_mb_{last.adapters}", last.rss_mb, "MB")
        self.extra["growth"] = [vars(step) for step in steps]
        if not self.quick:
            plot = REPO / "docs" / "performance-latency.png"
            scale.plot(steps, str(plot))
            print(f"  plot: {plot.relative_to(REPO)}")

    async def gateway(self) -> None:
        found = await gateway.follow(moves=20 if self.quick else 60)
        self.report("gateway_follow_p50_ms", found.p50_ms, "ms")
        self.report("gateway_follow_p95_ms", found.p95_ms, "ms")
        self.report("gateway_follow_max_ms", found.max_ms, "ms")

    async def real(self) -> None:
        found = await real_engine.real_overhead(trials=5)
        print(f"  engine load {found['engine_load_ms']:.0f} ms, apply -> Running {found['apply_to_running_ms']:.0f} ms")
        self.report("real_overhead_ms", found["real_overhead_ms"], "ms")

    async def inplace(self) -> None:
        rows = await load_inplace.measure(requests=25)
        print("\n".join(load_inplace.table(rows)))
        print(f"  {load_inplace.verdict(rows)}")
        for row in rows:
            if row.scenario == "load_inplace":
                loaded = next(r for r in rows if r.tokens == row.tokens and r.scenario == "loaded")
                self.report(f"load_inplace_extra_p50_ms_{row.tokens}tok", row.p50 - loaded.p50, "ms")


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller scale, under 3 minutes (what .ci/run runs)")
    args = parser.parse_args(argv)
    run = Run(args.quick)
    started = time.monotonic()
    print(f"modeladapter benchmarks ({'quick' if args.quick else 'full'} mode)")
    await run.section("apply -> Running, one adapter, 10 idle pods", run.single)
    await run.section("a burst of adapters (replicas: 2) over 20 pods", run.burst)
    await run.section("a serving pod deleted -> Running again elsewhere", run.repair)
    await run.section("engines that take 200 ms per load", run.overhead)
    await run.section("appends: 16 writers, one stream each, 5-event batches", run.appends)
    await run.section("fold", run.fold)
    await run.section("history of one adapter in a big log", run.history)
    await run.section("cost as the adapters grow (20 pods)", run.growth)
    await run.section("the sandbox's Envoy gateway follows an EndpointSlice change", run.gateway)
    if not args.quick:
        await run.section("a real vLLM 0.32 on this CPU", run.real)
        await run.section("requests after load_inplace, real vLLM 0.32", run.inplace)
    print(f"\n(all benchmarks: {time.monotonic() - started:.0f} s)")
    if run.failed:
        print(f"benchmarks that could not run: {', '.join(run.failed)}")
    document = {**run.figures, **{k: v for k, v in run.extra.items() if k != "growth"},
                "mode": "quick" if args.quick else "full", "failed": run.failed}  # fmt: skip
    print(json.dumps(document))
    return 1 if run.failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
