"""The engine calls a plan implies, what their outcomes decide, and when to look at an adapter again. Pure.

* `listings_due`: whose engine to ask for its `/v1/models` (a load a restart interrupted, a loaded placement not
  confirmed within the verify interval); the answers go to `plan_observations`;
* `unloads_due`: which unloads to try now; `plan_unload_outcomes` decides what they came to;
* `plan_load_outcomes`: what the loads a plan started came to;
* `plan_endpoints`: the addresses the Service's EndpointSlice lists, recorded when they change;
* `next_look`: the earliest deadline of a retry, a reconsideration, an unload, a verification or a pod's
  stability window, which the work queue waits for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Final

from modeladapter.fsm.events import OwnedObjectRestored, ServiceBound
from modeladapter.fsm.health import stable_since
from modeladapter.fsm.observations import Observation, PlanSettings
from modeladapter.fsm.phases import PlacementState, PlacementTrigger
from modeladapter.fsm.plans import CallOutcome, Plan, Planner, Pods
from modeladapter.fsm.rules import BIND_ENDPOINTS, LOAD_OUTCOME, RESTORE_OWNED, UNLOAD_OUTCOME
from modeladapter.fsm.state import AdapterState

S, U = PlacementState, PlacementTrigger


def listings_due(
    state: AdapterState, observation: Observation, settings: PlanSettings, *, verified_at: Mapping[str, datetime]
) -> tuple[str, ...]:
    """Pods whose engine should be asked for its `/v1/models`: a load a restart interrupted, or a loaded
    placement not confirmed within the verify interval (`verified_at`: when each pod last confirmed it)."""
    pods = Pods(observation, settings)
    due = observation.now - settings.verify_interval

    def unconfirmed(pod: str) -> bool:
        confirmed = verified_at.get(pod)
        return confirmed is None or confirmed <= due

    return tuple(
        p.pod
        for p in state.placements
        if p.pod in pods.healthy and (p.state is S.LOADING or (p.state is S.LOADED and unconfirmed(p.pod)))
    )


def unloads_due(state: AdapterState, *, now: datetime) -> tuple[str, ...]:
    """Pods whose unload should be tried now: every `Unloading` placement not waiting for its retry time."""
    return tuple(
        p.pod
        for p in state.placements
        if p.state is S.UNLOADING and (p.next_retry_at is None or p.next_retry_at <= now)
    )


def plan_load_outcomes(
    state: AdapterState, observation: Observation, settings: PlanSettings, outcomes: Mapping[str, CallOutcome]
) -> Plan:
    planner = Planner(state, observation, settings)
    for pod, outcome in outcomes.items():
        if outcome.error is None:
            planner.fire(LOAD_OUTCOME, U.LOAD_SUCCEEDED, pod=pod, duration_ms=round(outcome.duration_ms, 3))
        else:
            planner.fire(LOAD_OUTCOME, U.LOAD_FAILED, pod=pod, error=outcome.error, retriable=outcome.retriable)
    return planner.plan()


def plan_unload_outcomes(
    state: AdapterState,
    observation: Observation,
    settings: PlanSettings,
    *,
    due: Sequence[str],
    outcomes: Mapping[str, CallOutcome],
) -> Plan:
    """The outcome of each due unload: a pod that is gone, or that has no address to call, has none of its own."""
    planner = Planner(state, observation, settings)
    for pod in due:
        outcome = outcomes.get(pod)
        if pod not in observation.pods:
            planner.fire(UNLOAD_OUTCOME, U.POD_GONE, pod=pod, reason="pod deleted")
        elif outcome is None:
            planner.fire(UNLOAD_OUTCOME, U.UNLOAD_FAILED, pod=pod, error="the pod has no IP address")
        elif outcome.error is None:
            planner.fire(UNLOAD_OUTCOME, U.UNLOAD_SUCCEEDED, pod=pod)
        else:
            planner.fire(UNLOAD_OUTCOME, U.UNLOAD_FAILED, pod=pod, error=outcome.error)
    return planner.plan()


def plan_endpoints(
    state: AdapterState,
    *,
    service: str,
    addresses: Sequence[str],
    now: datetime,
    restored: Sequence[OwnedObjectRestored] = (),
) -> Plan:
    """The EndpointSlice now lists `addresses`: recorded when they changed; what was put back after someone
    else deleted or edited it (`restored`) is recorded first."""
    planner = Planner(state, Observation(now=now, namespace="", name=""), PlanSettings())
    for fact in restored:
        planner.record(RESTORE_OWNED, fact)
    listed = tuple(sorted(addresses))
    if state.endpoints != listed:
        planner.record(BIND_ENDPOINTS, ServiceBound(service=service, endpoints=listed))
    return planner.plan()


ROLLOUT_WAIT: Final = timedelta(seconds=15)
"""How often a rollout that has not moved for this long looks again (for a pod to surge onto, say)."""


def next_look(
    state: AdapterState, observation: Observation, settings: PlanSettings, *, service_ready: bool
) -> timedelta | None:
    """The earliest retry, reconsideration, unload, verification or stability deadline; None if nothing is due."""
    now = observation.now
    times: list[datetime] = []
    for placement in state.placements:
        if placement.next_retry_at is not None:
            times.append(placement.next_retry_at)
        if placement.state is S.UNLOADING and placement.next_retry_at is None:
            times.append(now + timedelta(seconds=1))
        if placement.state is S.LOADED:
            times.append(now + settings.verify_interval)
    for pod in observation.pods.values():
        if not pod.matches:
            continue
        ready_at = stable_since(pod.view, stability=settings.stability_window)
        if ready_at is not None and ready_at > now:
            times.append(ready_at)
    if state.instances and not service_ready:
        times.append(now + timedelta(seconds=2))
    rollout = state.rollout
    if rollout is not None and rollout.in_progress and rollout.halted_on is None:
        # The next pod of an update, once an unload freed one; less often while it waits for a pod.
        moving = rollout.progressed_at is not None and now - rollout.progressed_at < ROLLOUT_WAIT
        times.append(now + (timedelta(seconds=1) if moving else ROLLOUT_WAIT))
    if not times:
        return None
    return max(min(times) - now, timedelta(0))


def at(observation: Observation, now: datetime) -> Observation:
    """The same observation, later (after engine calls: outcomes count from when they happened)."""
    return replace(observation, now=max(observation.now, now))
