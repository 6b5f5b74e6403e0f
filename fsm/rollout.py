"""Updates of the artifact: which pods serve an older one, and how they are brought to the new one. Pure.

A pod serves an *older* artifact when its placement is `Loaded` from another artifact than the spec's. While
any does, a rollout is in progress (`RolloutStarted`, folded into `AdapterState.rollout`):

* **surge** (with `spec.replicas`, `maxSurge` > 0 and a free schedulable pod): the new artifact is placed on an
  extra pod first; once it serves, an old instance retires (`retire_replaced`). The adapter never has fewer
  instances than before, so a one-replica adapter always has an endpoint;
* **in place** otherwise: a pod leaves the instances (and so the EndpointSlice, which goes out before its engine
  is called), unloads the old artifact and loads the new one. At most `maxUnavailable` instances are out at once,
  and never the last of several.

When the new artifact fails on a pod it was updating (`Backoff` or `Exhausted` with it), the rollout halts there:
no other pod is taken out, surged onto or given the new artifact until that pod loads it or the spec changes (a
fixed URL rolls on; the old URL back is a rollback, the failed pod reloading the old artifact). Resting after
its attempts, that pod is tried again when the cool-down ends, as long as it can take the adapter. If its
placement is gone (the pod was deleted, or can no longer take the adapter), nothing could lift the halt any
more, and an engine error that happened to strike during the update would keep the adapter on two versions for
good: the rollout resumes and the next pod tries the new artifact afresh, halting it again if it fails there too
(at most one more instance per pod that goes). Failures that say nothing about the artifact (a restart cut the
update short, the EndpointSlice could not be written first) do not halt; the update is made again.

Everything here is folded from the log, so an operator restarted in the middle goes on where the log says: a
pod that already serves the new artifact is not stale, and is never reloaded again.
"""

from __future__ import annotations

from typing import Final

from modeladapter.fsm.events import InstanceUpdated, RolloutFinished, RolloutHalted, RolloutResumed, RolloutStarted
from modeladapter.fsm.observations import Desired
from modeladapter.fsm.phases import PlacementState, PlacementTrigger
from modeladapter.fsm.plans import Planner, Pods
from modeladapter.fsm.rules import RETIRE_REPLACED, TRACK_ROLLOUT, UPDATE_IN_PLACE
from modeladapter.fsm.state import AdapterState, Placement

S, U = PlacementState, PlacementTrigger
_IN_FLIGHT = frozenset({S.ASSIGNED, S.LOADING, S.BACKOFF})

INTERRUPTED: Final = "the operator restarted during the load"
"""The error of a load a restart cut short: it says nothing about the artifact."""
SLICE_NOT_UPDATED: Final = "the EndpointSlice could not be updated before the engine call; the update is made again"
"""The error of an update not started because its pod could not leave the EndpointSlice first."""
SLICE_STILL_LISTS: Final = "the EndpointSlice could not be updated to leave this pod out; the unload is tried again"
"""The error of an unload not made because the EndpointSlice may still list its pod."""
_NOT_THE_ARTIFACT: Final = frozenset({INTERRUPTED, SLICE_NOT_UPDATED})


def serving_older(state: AdapterState, desired: Desired) -> list[Placement]:
    """Instances that serve another artifact than the spec's, oldest first."""
    old = [p for p in state.placements if p.state is S.LOADED and p.artifact_url != desired.artifact_url]
    return sorted(old, key=lambda p: (p.since, p.pod))


def _updating(state: AdapterState) -> list[Placement]:
    """Placements on their way from an older artifact to the new one (an exhausted one may be tried again)."""
    return [
        p for p in state.placements if p.replacing is not None and (p.state in _IN_FLIGHT or p.state is S.EXHAUSTED)
    ]


def _failed(state: AdapterState, desired: Desired) -> list[Placement]:
    """Updates to the spec's artifact that failed on their pod (not for a restart or a write that failed)."""
    return [
        p
        for p in state.placements
        if p.replacing is not None
        and p.artifact_url == desired.artifact_url
        and p.state in (S.BACKOFF, S.EXHAUSTED)
        and p.last_error not in _NOT_THE_ARTIFACT
    ]


def track_rollout(planner: Planner, desired: Desired) -> None:
    """Record where the rollout stands: started (or retargeted), halted, resumed, finished."""
    state = planner.state
    old = serving_older(state, desired)
    rollout = state.rollout
    current = rollout is not None and rollout.in_progress and rollout.to_artifact == desired.artifact_url
    if old and not current:
        back = rollout is not None and rollout.in_progress and desired.artifact_url in rollout.from_artifacts
        planner.record(
            TRACK_ROLLOUT,
            RolloutStarted(
                from_artifacts=tuple(sorted({p.artifact_url or "" for p in old})),
                to_artifact=desired.artifact_url,
                instances=len(state.instances),
                max_unavailable=desired.max_unavailable,
                max_surge=desired.max_surge,
                rollback=back,
            ),
        )
    rollout = planner.state.rollout
    if rollout is None or not rollout.in_progress:
        return
    failed = _failed(planner.state, desired)
    if not old and not failed and not _updating(planner.state):
        back = rollout.rollback or rollout.to_artifact != desired.artifact_url
        planner.record(
            TRACK_ROLLOUT,
            RolloutFinished(artifact=desired.artifact_url, instances=len(planner.state.instances), rolled_back=back),
        )
        return
    if rollout.halted_on is not None:
        halted = planner.state.placement(rollout.halted_on)
        if halted is None:
            planner.record(TRACK_ROLLOUT, RolloutResumed(pod=rollout.halted_on, left=True))
        elif halted.state is not S.LOADED or halted.artifact_url != desired.artifact_url:
            return  # halted until that pod serves the new artifact (or leaves), or the spec changes
        else:
            planner.record(TRACK_ROLLOUT, RolloutResumed(pod=rollout.halted_on))
    if failed:
        planner.record(
            TRACK_ROLLOUT,
            RolloutHalted(pod=failed[0].pod, error=failed[0].last_error or "", serving_old=len(old)),
        )


def halted(state: AdapterState) -> bool:
    return halted_on(state) is not None


def halted_on(state: AdapterState) -> str | None:
    """The pod the rollout is halted on, if it is."""
    rollout = state.rollout
    return rollout.halted_on if rollout is not None and rollout.in_progress else None


def rolling(state: AdapterState) -> bool:
    """A rollout is in progress and not halted: the next pod may be taken on at once."""
    return state.rollout is not None and state.rollout.in_progress and state.rollout.halted_on is None


def retire_replaced(planner: Planner, pods: Pods, desired: Desired, *, wanted: int) -> None:
    """Instances beyond `wanted` that serve an older artifact retire (a surged new instance serves instead)."""
    serving = [p for p in planner.state.placements if p.state is S.LOADED and p.pod in pods.healthy]
    excess = len(serving) - wanted
    fresh = sorted(
        (p for p in serving if p.artifact_url == desired.artifact_url),
        key=lambda p: (p.since, p.pod),
        reverse=True,
    )
    for placement in serving_older(planner.state, desired)[: max(excess, 0)]:
        if fresh and rolling(planner.state):
            new = fresh.pop(0)
            updated = InstanceUpdated(
                pod=new.pod,
                artifact=desired.artifact_url,
                previous=placement.artifact_url or "",
                replaced_pod=placement.pod,
            )
            planner.record(RETIRE_REPLACED, updated)
        planner.unload(RETIRE_REPLACED, placement.pod)


def surge(planner: Planner, pods: Pods, desired: Desired, *, wanted: int) -> int:
    """How many extra replicas the rollout wants now: 0 when it does not surge (then it updates in place).

    Halted, it wants none more, but keeps those it has (the pod it failed on goes on being retried)."""
    state = planner.state
    old = serving_older(state, desired)
    if not old or not surges(desired):
        return 0
    if halted(state):
        # The pod it halted on counts even while it rests: it is retried there once the cool-down ends.
        active = sum(1 for p in state.placements if p.active or p.pod == halted_on(state))
        return min(max(active - wanted, 0), len(old))
    surging = [p for p in state.placements if p.state in _IN_FLIGHT and p.artifact_url in (None, desired.artifact_url)]
    if not surging and not free_pods(planner, pods):
        return 0
    return min(desired.max_surge, len(old))


def surges(desired: Desired) -> bool:
    return desired.replicas is not None and desired.max_surge > 0


def free_pods(planner: Planner, pods: Pods) -> list[str]:
    """Schedulable pods with room that hold no placement of this adapter."""
    return [pod for pod in pods.schedulable if planner.state.placement(pod) is None and pods.has_room(pod)]


def update_in_place(planner: Planner, pods: Pods, desired: Desired, *, surging: bool) -> None:
    """Take instances of an older artifact out for their reload: at most `maxUnavailable` out for their update at
    once, never the last of several, none while it surges or is halted."""
    state = planner.state
    retiring = any(p.state is S.UNLOADING and p.artifact_url != desired.artifact_url for p in state.placements)
    if halted(state) or surging or (surges(desired) and retiring):
        return  # a surge retired an instance, whose pod takes the next new one once it is free

    def serving() -> int:
        return sum(1 for p in planner.state.placements if p.state is S.LOADED and p.pod in pods.healthy)

    def out() -> int:
        return sum(1 for p in planner.state.placements if p.replacing is not None and p.state in _IN_FLIGHT)

    keep = 1 if serving() > 1 else 0  # the last of several instances always stays
    for placement in serving_older(state, desired):
        if placement.pod not in pods.healthy:
            continue
        if serving() - 1 < keep or out() >= desired.max_unavailable:
            return
        planner.fire(UPDATE_IN_PLACE, U.RELOAD, pod=placement.pod, artifact_url=desired.artifact_url)
