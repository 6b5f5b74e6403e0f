"""Builders for the planner's inputs: a folded state with placements, pods as the operator saw them, the spec.

cert-manager's `test/unit/gen` is the model: a default that works, and keyword changes for what a test is about.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modeladapter.fsm.events import SpecObserved
from modeladapter.fsm.health import PodView
from modeladapter.fsm.observations import Desired, Observation, PlanSettings, SeenPod
from modeladapter.fsm.phases import Phase, PlacementState
from modeladapter.fsm.plans import Fire, Plan
from modeladapter.fsm.scheduling import SchedulingPolicy
from modeladapter.fsm.state import AdapterState, Placement

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
ARTIFACT = "huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora"
NEWER = "huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora-v2"
SETTINGS = PlanSettings()
S = PlacementState


def desired(
    *, replicas: int | None = 1, artifact: str = ARTIFACT, policy: SchedulingPolicy = SchedulingPolicy.LEAST_ADAPTERS
) -> Desired:
    return Desired(
        artifact_url=artifact, replicas=replicas, policy=policy, lora_name="qwen-code-lora", selector="app=vllm"
    )


def pod(
    name: str,
    *,
    ready: bool = True,
    ready_for: float = 60.0,
    matches: bool = True,
    load: int = 0,
    capacity: int | None = None,
    terminating: bool = False,
) -> SeenPod:
    view = PodView(
        name=name,
        ip="10.0.0.2",  # the planner only asks whether a pod has one
        phase="Running",
        ready=ready,
        ready_since=NOW - timedelta(seconds=ready_for) if ready else None,
        terminating=terminating,
        capacity=capacity,
    )
    return SeenPod(view=view, matches=matches, load=load)


def observe(*pods: SeenPod, now: datetime = NOW) -> Observation:
    return Observation(now=now, namespace="default", name="qwen-code-lora", pods={p.name: p for p in pods}, seed="s")


def placement(
    pod_name: str,
    state: PlacementState,
    *,
    attempts: int = 1,
    retry_at: datetime | None = None,
    artifact: str = ARTIFACT,
    since: datetime = NOW - timedelta(minutes=5),
    error: str | None = None,
) -> Placement:
    return Placement(
        pod=pod_name,
        state=state,
        since=since,
        attempts=attempts,
        next_retry_at=retry_at,
        artifact_url=artifact,
        last_error=error,
    )


def adapter(*placements: Placement, phase: Phase | None = Phase.RUNNING, replicas: int | None = 1) -> AdapterState:
    spec = SpecObserved(
        generation=1, artifact_url=ARTIFACT, replicas=replicas, scheduler_name="default", pod_selector="app=vllm"
    )
    return AdapterState(
        stream_id="uid-1",
        namespace="default",
        name="qwen-code-lora",
        version=10,
        phase=phase,
        spec=spec,
        placements=placements,
    )


def fired(plan: Plan, pod_name: str | None = None) -> list[str]:
    """The triggers a plan fires, for one pod's placement (or the phase, with `pod_name` None)."""
    return [step.trigger.value for step in plan.steps if isinstance(step, Fire) and step.facts.pod == pod_name]


def rules(plan: Plan) -> list[str]:
    return [step.rule for step in plan.steps]
