"""A scripted walk through the state machines and the event log, for a first look without a cluster.

One ModelAdapter, `qwen-code-lora`, is placed on one of three pods. The first pod refuses every connection:
the adapter retries it five times with the documented backoff (scaled down from 5 s to 50 ms so the demo
takes two seconds), gives up on it, switches to the next pod, loads there, and reaches Running. Every step
is a real `decide` on the folded state and a real `append` to the SQLite log; the history printed at the end
is read back from the log.

This is not the operator: pods and engine answers are scripted. `modeladapter sandbox` will run the real one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TextIO

from modeladapter import migrations
from modeladapter.fsm import (
    AdapterState,
    BackoffPolicy,
    Facts,
    PhaseTrigger,
    PlacementState,
    PlacementTrigger,
    advance,
    decide,
    stamp,
)
from modeladapter.fsm.events import AdapterEvent, LoadFailed, PhaseChanged, PlacementChanged, PodSwitched, SpecObserved
from modeladapter.fsm.retriable import classify_failure
from modeladapter.fsm.scheduling import Candidate, SchedulingPolicy, choose_pods
from modeladapter.store import SqlEventStore, create_engine
from modeladapter.store.queries import phase_history

NAMESPACE, NAME = "default", "qwen-code-lora"
PODS = ("qwen-coder-1-5b-instruct-0", "qwen-coder-1-5b-instruct-1", "qwen-coder-1-5b-instruct-2")
ARTIFACT = "huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora"
DEMO_BACKOFF = BackoffPolicy.scaled(0.05)
REFUSING_POD = PODS[0]


class _Run:
    """The demo's adapter: its folded state, its stream, and the reconcile id of the current step."""

    def __init__(self, store: SqlEventStore, out: TextIO, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.out = out
        self.clock = clock
        self.stream_id = str(uuid.uuid4())
        self.state = AdapterState()

    async def record(self, payloads: list[AdapterEvent]) -> None:
        """Append one step's events, fold them in, and print what happened."""
        now = self.clock()
        await self.store.append(
            self.stream_id,
            stamp(payloads, at=now, reconcile_id=uuid.uuid4().hex[:12], observed_generation=1),
            expected_version=self.state.version,
            namespace=NAMESPACE,
            name=NAME,
        )
        self.state = advance(self.state, payloads, at=now)
        for payload in payloads:
            line = _describe(payload)
            if line:
                print(f"{now:%H:%M:%S.%f}"[:-3] + f"  {line}", file=self.out)

    async def decide(self, trigger: PhaseTrigger | PlacementTrigger, **facts: Any) -> None:
        observed = replace(Facts(now=self.clock(), backoff=DEMO_BACKOFF), **facts)
        await self.record(decide(self.state, trigger, observed))


def _describe(payload: AdapterEvent) -> str:
    match payload:
        case PhaseChanged():
            return f"phase   {payload.from_phase or '-'} -> {payload.to_phase}  ({payload.trigger}: {payload.message})"
        case PlacementChanged():
            return f"  pod {payload.pod}: {payload.from_state or '-'} -> {payload.to_state}  ({payload.trigger})"
        case LoadFailed():
            wait = f", retry at {payload.retry_at:%H:%M:%S.%f}"[:-3] if payload.retry_at else ""
            kind = "retriable" if payload.retriable else "not retriable"
            return f"  load attempt {payload.attempt} on {payload.pod} failed: {payload.error} ({kind}{wait})"
        case PodSwitched():
            return f"  switched {payload.from_pod} -> {payload.to_pod} ({payload.reason})"
        case _:
            return ""


async def _load(run: _Run, pod: str) -> None:
    """Try the pod until it loads or is exhausted; the first pod refuses every connection."""
    await run.decide(PlacementTrigger.START_LOAD, pod=pod)
    while True:
        if pod != REFUSING_POD:
            await run.decide(PlacementTrigger.LOAD_SUCCEEDED, pod=pod, duration_ms=42.0)
            return
        error = ConnectionRefusedError(111, f"connect to {pod}:8000: connection refused")
        verdict = classify_failure(exception=error)
        await run.decide(PlacementTrigger.LOAD_FAILED, pod=pod, error=str(error), retriable=verdict.retriable)
        placement = run.state.placement(pod)
        assert placement is not None
        if placement.state is PlacementState.EXHAUSTED:
            return
        assert placement.next_retry_at is not None
        await asyncio.sleep(max((placement.next_retry_at - run.clock()).total_seconds(), 0.0))
        await run.decide(PlacementTrigger.RETRY_DUE, pod=pod)
        placement = run.state.placement(pod)
        if placement is not None and placement.state is PlacementState.EXHAUSTED:
            return


async def run_demo(database_url: str, out: TextIO) -> int:
    engine = create_engine(database_url)
    await migrations.upgrade(engine)
    store = SqlEventStore(engine)
    try:
        run = _Run(store, out, clock=lambda: datetime.now(UTC))
        print(f"modeladapter demo: {NAMESPACE}/{NAME} over {len(PODS)} scripted pods ({REFUSING_POD} refuses)\n", file=out)
        await run.record(
            [SpecObserved(generation=1, artifact_url=ARTIFACT, replicas=1, scheduler_name="default", pod_selector="model.aibrix.ai/name=qwen-coder-1-5b-instruct")]
        )
        await run.decide(PhaseTrigger.CREATED)
        tried: list[str] = []
        while True:
            # The refusing pod holds no other adapter, so least-adapters picks it first.
            candidates = [Candidate(pod=p, adapters=0 if p == REFUSING_POD else 1) for p in PODS if p not in tried]
            (pod,) = choose_pods(SchedulingPolicy.LEAST_ADAPTERS, candidates, adapter=NAME, count=1).pods
            replaces = tried[-1] if tried else None
            reason = "MaxRetriesExceeded" if replaces else "fewest adapters"
            await run.decide(PlacementTrigger.ASSIGN, pod=pod, policy="least-adapters", replaces=replaces, reason=reason)
            await run.decide(PhaseTrigger.PODS_SELECTED, message=f"ModelAdapter {NAMESPACE}/{NAME} has selected 1 pods for scheduling: [{pod}]")
            await run.decide(PhaseTrigger.LOAD_STARTED)
            await _load(run, pod)
            if run.state.instances:
                break
            tried.append(pod)
        await run.decide(PhaseTrigger.LOAD_VERIFIED)
        await run.decide(PhaseTrigger.SERVICE_BOUND, message=f"ModelAdapter {NAMESPACE}/{NAME} is ready")

        print(f"\nphase history read back from the log ({database_url}):", file=out)
        now = datetime.now(UTC)
        for t in await phase_history(store, namespace=NAMESPACE, name=NAME):
            if t.stream_id == run.stream_id:
                spent = t.time_in_phase(now).total_seconds()
                print(f"  {t.at:%H:%M:%S.%f}"[:-3] + f"  {t.from_phase or '-':>9} -> {t.to_phase:<9} {spent:7.3f}s  {t.trigger}", file=out)
        placements = ", ".join(f"{p.pod}={p.state}" for p in run.state.placements)
        print(
            f"\nfolded state: phase={run.state.phase} instances={list(run.state.instances)} "
            f"retries={run.state.load_failures} pod switches={run.state.pod_switches} events={run.state.version}",
            file=out,
        )
        print(f"placements: {placements}", file=out)
        return 0
    finally:
        await store.close()
