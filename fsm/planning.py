"""The planner: from what the log knows and what the operator observed, the triggers to fire. Pure.

kopf's `detect_changing_cause` is the model: "a purely computational function with no side-effects". Each
`plan_*` function takes the folded state, the observation (pods with their health and load, `now`) and the
settings, and returns a `Plan`: the steps to take, in order, each a trigger with its facts (`Fire`) or a fact
to record (`Record`), and the state they lead to. The operator then decides each step itself (`decide`
rejecting one is a bug, never swallowed), writes the log ahead of its engine calls, makes them, and hands the
outcomes back to `modeladapter.fsm.calls`.

A rule that depends on the current state asks the table which states take its trigger
(`modeladapter.fsm.table.sources`), never a list of its own.

The rules (`modeladapter.fsm.rules`) are applied in this order by a convergence, each to every placement:

1. observations: `retire_gone`, `unload_unselected`, `lose_unhealthy`; the engines' listings:
   `settle_interrupted_load`, `notice_missing` (first round of a pass only);
2. updates of the artifact (`modeladapter.fsm.rollout`): `track_rollout`, `retire_replaced`;
3. scheduling: `retry_when_due`, `repair_lost`, `reconsider_rested`, `surge_update` or `place_missing`, or
   `trim_surplus`, `release_lost`; then `start_loads`, `update_in_place`;
4. the phase: `walk_phase` towards the target the placements call for (`modeladapter.fsm.progress`).

A pod that refuses the adapter for good is switched away from in the same pass, one round per pod at most
(`another_round`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from modeladapter.fsm.events import Finalized, SpecObserved, SpecRejected
from modeladapter.fsm.observations import Desired, Listed, Listing, Observation, PlanSettings
from modeladapter.fsm.phases import PhaseTrigger, PlacementState, PlacementTrigger
from modeladapter.fsm.plans import Plan, Planner, Pods
from modeladapter.fsm.progress import Blocked, Target, target, walk
from modeladapter.fsm.rollout import (
    INTERRUPTED,
    halted,
    halted_on,
    retire_replaced,
    serving_older,
    surge,
    track_rollout,
    update_in_place,
)
from modeladapter.fsm.rules import (
    ADMIT,
    FINALIZE,
    LOSE_UNHEALTHY,
    NOTICE_MISSING,
    OBSERVE_SPEC,
    PLACE_MISSING,
    RECONSIDER_RESTED,
    RELEASE_LOST,
    REPAIR_LOST,
    RETIRE_EVERYTHING,
    RETIRE_GONE,
    RETRY_WHEN_DUE,
    SETTLE_INTERRUPTED_LOAD,
    START_LOADS,
    SURGE_UPDATE,
    TRIM_SURPLUS,
    UNLOAD_UNSELECTED,
    WALK_PHASE,
)
from modeladapter.fsm.scheduling import Candidate, choose_pods
from modeladapter.fsm.state import AdapterState
from modeladapter.fsm.table import sources
from modeladapter.fsm.wording import switch_reason

S, T, U = PlacementState, PhaseTrigger, PlacementTrigger
# The order in which surplus replicas are let go: what serves least first.
_SURPLUS_ORDER = {S.ASSIGNED: 0, S.BACKOFF: 1, S.LOADING: 2, S.LOADED: 3}


# --- the spec -------------------------------------------------------------------------------------------------


def plan_admission(state: AdapterState, *, spec: SpecObserved, rejection: SpecRejected | None, now: datetime) -> Plan:
    """A generation not seen before is recorded (and rejected if invalid); a new stream starts Pending."""
    planner = Planner(state, Observation(now=now, namespace="", name=""), PlanSettings())
    if state.version and state.generation == spec.generation:
        return planner.plan()
    planner.record(OBSERVE_SPEC, spec)
    if rejection is not None:
        planner.record(OBSERVE_SPEC, rejection)
    if planner.state.phase is None:
        planner.fire(ADMIT, T.CREATED)
    return planner.plan()


# --- what the pods and engines say ----------------------------------------------------------------------------


def _retire_lost_pods(planner: Planner, pods: Pods, *, selector_counts: bool) -> None:
    for placement in planner.placements(U.POD_GONE):
        if placement.pod not in pods.all:
            planner.fire(RETIRE_GONE, U.POD_GONE, pod=placement.pod, reason="pod deleted")
    if selector_counts:
        for placement in planner.placements(U.UNLOAD):
            if placement.pod not in pods.matching:
                planner.unload(UNLOAD_UNSELECTED, placement.pod)
    for placement in planner.placements(U.POD_LOST):
        health = pods.health[placement.pod]
        if not health.healthy:
            planner.fire(LOSE_UNHEALTHY, U.POD_LOST, pod=placement.pod, reason=health.reason)


def _settle_listings(planner: Planner, listings: Mapping[str, Listing]) -> None:
    for placement in list(planner.state.placements):
        listing = listings.get(placement.pod)
        if listing is None:
            continue
        if placement.state is S.LOADING:
            if listing.listed is Listed.LOADED and placement.replacing is None:
                planner.fire(SETTLE_INTERRUPTED_LOAD, U.LOAD_SUCCEEDED, pod=placement.pod, duration_ms=0.0)
            else:
                # An update cut short may have left the old version, or new contents not yet made safe (the
                # runtime's listing cannot tell versions apart): it is made again, unload and load and all.
                error = INTERRUPTED
                planner.fire(SETTLE_INTERRUPTED_LOAD, U.LOAD_FAILED, pod=placement.pod, error=error, retriable=True)
        elif placement.state in sources(U.ADAPTER_MISSING) and listing.listed is not Listed.LOADED:
            planner.fire(NOTICE_MISSING, U.ADAPTER_MISSING, pod=placement.pod, reason=_missing_reason(listing))


def _missing_reason(listing: Listing) -> str:
    match listing.listed:
        case Listed.OTHER_PATH:
            return "the engine serves another artifact under this name"
        case Listed.UNREACHABLE:
            return f"engine unreachable: {listing.error}"
        case _:
            return "not listed by the engine's /v1/models (unloaded by another client, or the engine restarted)"


def plan_observations(
    state: AdapterState, observation: Observation, settings: PlanSettings, *, listings: Mapping[str, Listing]
) -> Plan:
    """What the pods and the engines say: deleted, unselected and unhealthy pods, and the listings' verdicts."""
    planner = Planner(state, observation, settings)
    _retire_lost_pods(planner, Pods(observation, settings), selector_counts=True)
    _settle_listings(planner, listings)
    return planner.plan()


def plan_truthfulness(state: AdapterState, observation: Observation, settings: PlanSettings) -> Plan:
    """On a failure path too: placements on deleted pods retire, and unhealthy ones leave the instances."""
    planner = Planner(state, observation, settings)
    _retire_lost_pods(planner, Pods(observation, settings), selector_counts=False)
    return planner.plan()


# --- converging on the spec -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Restart:
    """What says why a `Failed` adapter starts over, fixed when a pass has taken in its observations."""

    failed_for: str | None = None
    """The reason of the `Failed` phase the pass began in (None: it was not Failed)."""
    fresh_spec: bool = False
    """The pass saw a new generation of the spec."""
    tried: frozenset[str] = frozenset()
    """Pods that had a placement before the pass scheduled anything."""

    def reason(self, state: AdapterState) -> PhaseTrigger:
        """Its spec changed (it failed for the spec), new pods were placed, or its exhausted pods rested."""
        if self.failed_for in ("InvalidSpec", "SecretNotFound", "SecretInvalid") and self.fresh_spec:
            return T.SPEC_CHANGED
        if any(p.pod not in self.tried for p in state.placements):
            return T.PODS_CHANGED
        return T.RETRY_DUE


def plan_convergence(
    state: AdapterState,
    observation: Observation,
    desired: Desired,
    settings: PlanSettings,
    *,
    restart: Restart = Restart(),
    reconsider_now: bool = False,
) -> Plan:
    """One round of converging: retries, repairs, placements and loads, then the phase they call for.

    `reconsider_now`: exhausted pods get fresh attempts without waiting for their rest (a new spec may be the
    fix), in the first round of a pass that saw one."""
    planner = Planner(state, observation, settings)
    pods = Pods(observation, settings)
    track_rollout(planner, desired)
    wanted = _wanted(planner, pods, desired)
    retire_replaced(planner, pods, desired, wanted=wanted)
    extra = surge(planner, pods, desired, wanted=wanted)
    count, blocked = _schedule(planner, pods, desired, reconsider_now=reconsider_now, surge=extra)
    old = serving_older(planner.state, desired)
    for placement in list(planner.state.placements):
        if placement.pod in pods.healthy and placement.state in sources(U.START_LOAD):
            # A surge's load replaces an instance of the old artifact: the pod may hold that one's cached blocks.
            replacing = old[0].artifact_url if old and extra else None
            planner.fire(
                START_LOADS, U.START_LOAD, pod=placement.pod, artifact_url=desired.artifact_url, replacing=replacing
            )
    update_in_place(planner, pods, desired, surging=extra > 0)
    _walk(planner, service_ready=None, blocked=blocked, restart=restart)
    return planner.plan(desired=count, blocked=blocked)


def _wanted(planner: Planner, pods: Pods, desired: Desired) -> int:
    """Replicas wanted: `spec.replicas`, or every schedulable pod and every healthy one that holds the adapter."""
    if desired.replicas is not None:
        return desired.replicas
    holding = {p.pod for p in planner.state.placements if p.pod in pods.healthy and (p.active or p.state is S.LOST)}
    return len(set(pods.schedulable) | holding)


def _schedule(
    planner: Planner, pods: Pods, desired: Desired, *, reconsider_now: bool, surge: int = 0
) -> tuple[int, Blocked | None]:
    """Retry what is due, repair lost placements, place missing replicas (and `surge` extra ones for an
    update), trim surplus ones. Returns the replicas wanted, without the surge."""
    now = planner.now
    for placement in planner.placements(U.RETRY_DUE):
        if placement.next_retry_at is not None and placement.next_retry_at <= now and placement.pod in pods.healthy:
            planner.fire(RETRY_WHEN_DUE, U.RETRY_DUE, pod=placement.pod, artifact_url=desired.artifact_url)
    wanted = _wanted(planner, pods, desired)

    def missing() -> int:
        return wanted + surge - sum(1 for p in planner.state.placements if p.active)

    # Repair first: a healthy pod that lost the adapter (eviction, engine restart) gets it back.
    for placement in list(planner.state.placements):
        if (
            placement.state is S.LOST
            and placement.pod in pods.healthy
            and missing() > 0
            and pods.has_room(placement.pod)
        ):
            planner.fire(REPAIR_LOST, U.RELOAD, pod=placement.pod, artifact_url=desired.artifact_url)
    # Exhausted pods get fresh attempts once they rested, or at once for a new spec (it may be the fix);
    # pods no longer needed are let go.
    for placement in planner.placements(U.RECONSIDER):
        rested = placement.next_retry_at is not None and placement.next_retry_at <= now
        # The pod a rollout halted on is tried again even if no replica is missing: its retry is what can lift
        # the halt, and letting it go would send the failing artifact to the next pod.
        holds_the_halt = halted_on(planner.state) == placement.pod
        if rested or reconsider_now:
            usable = placement.pod in pods.schedulable and pods.has_room(placement.pod)
            if (missing() > 0 or holds_the_halt) and usable:
                planner.fire(RECONSIDER_RESTED, U.RECONSIDER, pod=placement.pod)
            elif rested:
                planner.unload(RECONSIDER_RESTED, placement.pod)
    blocked: Blocked | None = None
    if missing() > 0 and not halted(planner.state):  # halted, no other pod is given the new artifact
        blocked = _place(planner, pods, desired, missing(), surging=min(surge, missing()))
    elif missing() < 0:
        surplus = sorted(
            (p for p in planner.state.placements if p.active),
            key=lambda p: (_SURPLUS_ORDER[p.state], p.artifact_url == desired.artifact_url, -p.since.timestamp()),
        )
        for placement in surplus[: -missing()]:
            planner.unload(TRIM_SURPLUS, placement.pod)
    if wanted == 0 and not any(p.active for p in planner.state.placements):
        # `replicas` omitted and no pod schedulable yet: say why, as for a replica that cannot be placed.
        blocked = _why_unplaced(planner, pods, desired, full=())
    for placement in list(planner.state.placements):
        if placement.state is S.LOST and placement.pod in pods.healthy:
            planner.unload(RELEASE_LOST, placement.pod)
    return wanted, blocked


def _place(planner: Planner, pods: Pods, desired: Desired, count: int, *, surging: int = 0) -> Blocked | None:
    """Place `count` replicas by the policy; the last `surging` of them are an update's surge."""
    taken = {p.pod for p in planner.state.placements if p.state is not S.LOST}
    pool = [
        Candidate(pod=name, adapters=pods.load(name), capacity=pod.view.capacity)
        for name, pod in pods.schedulable.items()
        if name not in taken
    ]
    choice = choose_pods(desired.policy, pool, adapter=desired.lora_name, count=count, seed=planner.observation.seed)
    displaced = [p for p in planner.state.placements if p.state in (S.EXHAUSTED, S.LOST) and p.pod not in choice.pods]
    for number, pod in enumerate(choice.pods):
        policy = f"{desired.policy.value}: {pods.load(pod)} adapters on the pod"
        if number >= count - surging:
            reason = f"surge: the new artifact is loaded here before an instance of the old one retires ({policy})"
            planner.fire(SURGE_UPDATE, U.ASSIGN, pod=pod, policy=desired.policy.value, reason=reason)
            continue
        old = displaced.pop(0) if displaced else None
        reason = switch_reason(old) if old is not None else policy
        replaces = old.pod if old is not None else None
        planner.fire(PLACE_MISSING, U.ASSIGN, pod=pod, policy=desired.policy.value, replaces=replaces, reason=reason)
    if any(p.active for p in planner.state.placements):
        return None
    return _why_unplaced(planner, pods, desired, full=choice.full)


def _why_unplaced(planner: Planner, pods: Pods, desired: Desired, *, full: Sequence[str]) -> Blocked:
    if full:
        return Blocked("InsufficientCapacity", f"every candidate pod is full ({' '.join(full)})")
    if pods.healthy and len(pods.schedulable) < len(pods.healthy):
        window = planner.settings.stability_window.total_seconds()
        return Blocked("WaitingForStablePods", f"matching pods have been Ready for less than {window:g}s")
    namespace = planner.observation.namespace
    return Blocked("NoCandidatePods", f"no healthy pod in namespace {namespace} matches {desired.selector}")


def another_round(before: AdapterState, after: AdapterState, observation: Observation, settings: PlanSettings) -> bool:
    """After a round's loads: more pods were exhausted and a schedulable pod was never tried, so the same pass
    switches to it (a pod that refuses the adapter for good costs no wait)."""
    exhausted = sum(1 for p in after.placements if p.state is S.EXHAUSTED)
    if exhausted == sum(1 for p in before.placements if p.state is S.EXHAUSTED):
        return False
    return bool(set(Pods(observation, settings).schedulable) - {p.pod for p in after.placements})


# --- deletion ---------------------------------------------------------------------------------------------------


def plan_retirement(
    state: AdapterState, observation: Observation, settings: PlanSettings, *, deadline: datetime
) -> Plan:
    """Unload the adapter from every pod (a deleted pod counts as unloaded), abandoning failures at `deadline`."""
    planner = Planner(state, observation, settings)
    for placement in list(planner.state.placements):
        if placement.pod not in observation.pods:
            planner.fire(RETIRE_EVERYTHING, U.POD_GONE, pod=placement.pod, reason="pod deleted")
        elif placement.state in sources(U.UNLOAD):
            planner.unload(RETIRE_EVERYTHING, placement.pod, deadline=deadline)
    return planner.plan()


def plan_finalization(state: AdapterState, *, now: datetime, placements_left: bool = False) -> Plan:
    """The stream ends once no placement is left (a deleted adapter, or one forced off the cluster).

    `placements_left`: end it all the same (the object goes without waiting for us: our finalizer is not on it)."""
    planner = Planner(state, Observation(now=now, namespace="", name=""), PlanSettings())
    if (placements_left or not state.placements) and not state.finalized and state.version:
        planner.record(FINALIZE, Finalized())
    return planner.plan()


# --- the phase --------------------------------------------------------------------------------------------------


def plan_phase(
    state: AdapterState,
    observation: Observation,
    settings: PlanSettings,
    *,
    to: Target | None = None,
    service_ready: bool | None = None,
    blocked: Blocked | None = None,
    restart: Restart = Restart(),
) -> Plan:
    """The phase edges towards `to`, or towards where the placements say the adapter stands."""
    planner = Planner(state, observation, settings)
    if to is None:
        _walk(planner, service_ready=service_ready, blocked=blocked, restart=restart)
    else:
        _walk_to(planner, to)
    return planner.plan()


def _walk(planner: Planner, *, service_ready: bool | None, blocked: Blocked | None, restart: Restart) -> None:
    where = planner.observation
    to = target(
        planner.state,
        namespace=where.namespace,
        name=where.name,
        service_ready=service_ready,
        blocked=blocked,
        leaving=restart.reason(planner.state),
    )
    _walk_to(planner, to)


def _walk_to(planner: Planner, to: Target) -> None:
    where = planner.observation
    for step in walk(planner.state, to, namespace=where.namespace, name=where.name):
        planner.fire(WALK_PHASE, step.trigger, reason=step.reason, message=step.message)
