"""The words of the phase conditions: what `kubectl describe` says about an adapter in each phase. Pure.

The seed documentation fixes two of them (`Scheduled` and `Ready`), AIBrix's wording included: the pods are
printed as Go prints a slice, `[a b]`. The others say what the placements are doing, pod by pod.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from modeladapter.fsm.phases import PlacementState
from modeladapter.fsm.state import AdapterState, Placement


def scheduled_message(namespace: str, name: str, pods: Iterable[str]) -> str:
    chosen = tuple(pods)
    return f"ModelAdapter {namespace}/{name} has selected {len(chosen)} pods for scheduling: [{' '.join(chosen)}]"


def ready_message(namespace: str, name: str) -> str:
    return f"ModelAdapter {namespace}/{name} is ready"


def loaded_message(state: AdapterState) -> str:
    return f"verified loaded on {len(state.instances)} pods: [{' '.join(state.instances)}]"


def loading_message(placements: Iterable[Placement]) -> str:
    shown = [_describe(p) for p in placements]
    return f"loading on {len(shown)} pods: " + "; ".join(shown)


def loading_failed_message(exhausted: Iterable[Placement]) -> str:
    errors = "; ".join(f"pod {p.pod}: {p.last_error or 'unknown error'}" for p in exhausted)
    return f"Loading failed on all pods: {errors}"


def switch_reason(replaced: Placement) -> str:
    """Why an assignment replaces `replaced` (a `PodSwitched` reason): its retries ran out, or it was lost."""
    if replaced.state is PlacementState.EXHAUSTED:
        return f"MaxRetriesExceeded: {replaced.last_error or 'no attempts left'}"
    return f"PodLost: {replaced.last_error or 'the pod was lost'}"


def _describe(placement: Placement) -> str:
    if placement.state is PlacementState.BACKOFF and placement.next_retry_at is not None:
        failed = f"attempt {placement.attempts} failed: {placement.last_error}"
        return f"{placement.pod} ({failed}; retry at {placement.next_retry_at:%H:%M:%S})"
    return f"{placement.pod} (attempt {placement.attempts})"


def progress_condition(state: AdapterState) -> tuple[Literal["True", "False"], str, str] | None:
    """The `Progressing` condition's status, reason and message; None before the first update."""
    rollout = state.rollout
    if rollout is None:
        return None
    to = rollout.to_artifact
    if not rollout.in_progress:
        served = rollout.finished_artifact or to
        if rollout.rolled_back:
            return "True", "RolledBack", f"rolled back: {len(state.instances)} instances serve {served}"
        return "True", "UpdateComplete", f"every instance serves {served} ({len(state.instances)} instances)"
    old = [p.pod for p in state.placements if p.state is PlacementState.LOADED and p.artifact_url != to]
    new = [p.pod for p in state.placements if p.state is PlacementState.LOADED and p.artifact_url == to]
    if rollout.halted_on is not None:
        return (
            "False",
            "UpdateFailed",
            f"the update to {to} failed on pod {rollout.halted_on}: {rollout.halted_error or 'unknown error'}; "
            f"halted, {len(old)} instances keep serving the older artifact [{' '.join(old)}]; fix "
            "spec.artifactURL to resume, or set it back to roll back",
        )
    moving = [p.pod for p in state.placements if p.replacing is not None and p.state is not PlacementState.LOADED]
    doing = f"; updating [{' '.join(moving)}]" if moving else ""
    return (
        "True",
        "RollingUpdate",
        f"updating to {to}: {len(new)} of {len(new) + len(old) + len(moving)} instances updated{doing}",
    )
