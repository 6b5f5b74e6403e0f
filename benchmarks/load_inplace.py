"""What `load_inplace` costs the requests that follow it, on a real vLLM 0.32 (CPU, the real-engine lane of
`.ci/prepare/30-vllm`).

vLLM stores `load_inplace: true` in the adapter's LoRARequest, and the worker reloads an adapter whose request
says so (`lora/worker_manager.py`, `LRUCacheWorkerLoRAManager.add_adapter`) every time the model runner sets
the active adapters: at every forward step of every later request (vllm #33791). Three adapters serve the
same weights (lora-b) and take turns, one greedy completion each, short prompt, `ignore_eos`:

* `loaded`: lora-b loaded once, the usual way;
* `unload + load`: lora-a loaded, used, unloaded, then lora-b loaded under the same name (the operator's update);
* `load_inplace`: lora-a loaded, used, then lora-b loaded over it with `load_inplace: true`.

One server (about 35 s to start) and a few seconds of requests: about 50 s in all. `benchmarks/run.py` runs it
in full mode; by hand, take the sandbox lock (other runs use fixed loopback ports):

    flock /tmp/modeladapter-sandbox.lock .venv/bin/python benchmarks/load_inplace.py [--requests 30]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a plain script: `benchmarks` is imported from the repository
    sys.path.insert(0, str(REPO))

from modeladapter.sandbox.engine.vllm_lane import Lane, VllmServer  # noqa: E402

PROMPT = "Hello world"
SCENARIOS = ("loaded", "unload + load", "load_inplace")
NAMES = {"loaded": "loaded", "unload + load": "reloaded", "load_inplace": "inplace"}


class LaneNotPrepared(RuntimeError):
    pass


@dataclass(frozen=True)
class Row:
    scenario: str
    tokens: int
    milliseconds: list[float]

    @property
    def p50(self) -> float:
        return statistics.median(self.milliseconds)

    @property
    def p95(self) -> float:
        ordered = sorted(self.milliseconds)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.milliseconds)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _call(http: httpx.AsyncClient, path: str, body: dict[str, object]) -> httpx.Response:
    answer = await http.post(path, json=body)
    if answer.status_code != 200:
        raise RuntimeError(f"{path} {body} answered {answer.status_code}: {answer.text[:300]}")
    return answer


async def _complete(http: httpx.AsyncClient, model: str, tokens: int) -> tuple[float, str]:
    body = {"model": model, "prompt": PROMPT, "max_tokens": tokens, "temperature": 0, "ignore_eos": True}
    started = time.perf_counter()
    answer = await _call(http, "/v1/completions", body)
    elapsed = (time.perf_counter() - started) * 1000
    return elapsed, str(answer.json()["choices"][0]["text"])


async def _prepare_adapters(http: httpx.AsyncClient, lane: Lane) -> None:
    a, b = str(lane.adapter("lora-a")), str(lane.adapter("lora-b"))
    await _call(http, "/v1/load_lora_adapter", {"lora_name": "loaded", "lora_path": b})
    await _call(http, "/v1/load_lora_adapter", {"lora_name": "reloaded", "lora_path": a})
    await _complete(http, "reloaded", 2)
    await _call(http, "/v1/unload_lora_adapter", {"lora_name": "reloaded"})
    await _call(http, "/v1/load_lora_adapter", {"lora_name": "reloaded", "lora_path": b})
    await _call(http, "/v1/load_lora_adapter", {"lora_name": "inplace", "lora_path": a})
    await _complete(http, "inplace", 2)
    await _call(http, "/v1/load_lora_adapter", {"lora_name": "inplace", "lora_path": b, "load_inplace": True})


async def measure(*, requests: int = 25, tokens: Sequence[int] = (4, 16)) -> list[Row]:
    """p50/p95 completion latency per scenario and completion length; the scenarios take turns."""
    lane = Lane()
    problem = lane.problem()
    if problem is not None:
        raise LaneNotPrepared(problem)
    # Four adapters stay in the worker (the unloaded one too): room for all, so none is evicted and re-read.
    server = VllmServer("127.0.0.1", _free_port(), lane=lane, max_loras=4)
    await asyncio.to_thread(server.start)
    rows: list[Row] = []
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as http:
            await _prepare_adapters(http, lane)
            for count in tokens:
                timings: dict[str, list[float]] = {scenario: [] for scenario in SCENARIOS}
                texts: dict[str, set[str]] = {scenario: set() for scenario in SCENARIOS}
                for round_ in range(requests + 2):  # the first two rounds warm up and are not counted
                    for scenario in SCENARIOS:
                        elapsed, text = await _complete(http, NAMES[scenario], count)
                        texts[scenario].add(text)
                        if round_ >= 2:
                            timings[scenario].append(elapsed)
                if len(set.union(*texts.values())) != 1:
                    raise RuntimeError(f"the three adapters do not serve the same weights: {texts}")
                rows.extend(Row(scenario, count, timings[scenario]) for scenario in SCENARIOS)
    finally:
        await asyncio.to_thread(server.stop)
    return rows


def table(rows: Sequence[Row]) -> list[str]:
    lines = [
        f"  {'adapter':<14} {'tokens':>6} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'p50 vs loaded':>14}"
    ]
    for row in rows:
        base = next(r for r in rows if r.tokens == row.tokens and r.scenario == "loaded")
        lines.append(
            f"  {row.scenario:<14} {row.tokens:>6} {len(row.milliseconds):>4} {row.p50:>8.1f} {row.p95:>8.1f} "
            f"{row.mean:>8.1f} {row.p50 - base.p50:>+9.1f} ms"
        )
    return lines


def verdict(rows: Sequence[Row]) -> str:
    """How much slower `load_inplace` makes each later request, per request and per generated token."""
    parts = []
    for count in sorted({row.tokens for row in rows}):
        by = {row.scenario: row for row in rows if row.tokens == count}
        extra = by["load_inplace"].p50 - by["loaded"].p50
        parts.append(
            f"{extra:+.1f} ms at {count} tokens ({extra / by['loaded'].p50:+.0%}, {extra / count:+.1f} ms/token)"
        )
    return "load_inplace, p50 against a normal load: " + "; ".join(parts)


async def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=25, help="timed requests per adapter and length")
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows = await measure(requests=args.requests)
    print(f"completion latency on a real vLLM 0.32 (CPU), prompt {PROMPT!r}, greedy, ignore_eos")
    print("\n".join(table(rows)))
    print(verdict(rows))
    print(f"({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
