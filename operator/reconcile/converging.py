"""Converging on the spec: observe → plan → decide → write ahead → engine calls → outcomes → publish.

1. **credentials**: the API key and artifact credentials are read fresh; a missing Secret fails the adapter
   (`SecretNotFound`, naming the field) while keeping what it shows truthful;
2. **observe**: the namespace's pods from the cache; the engines of loaded placements not confirmed within the
   verify interval (and of loads a restart interrupted) are asked for their `/v1/models`;
3. **plan and decide** what the pods and listings say (`plan_observations`), then, in rounds, what to place
   and load (`plan_convergence`); each round's loads are written ahead to the log, the status and endpoints
   go out if the instances changed, then the loads run and their outcomes are decided. A pod that refuses the
   adapter for good is switched away from in the same pass, one round per pod at most, and an update rolls
   on from pod to pod while it is not halted (a pod leaves the EndpointSlice before its engine is called);
4. **unloads** that are due run the same way (written ahead, then called);
5. **publish**: the phase follows the placements, the Service and EndpointSlice list the instances, the
   phase takes in whether they do, one append, and the status.

The placement index is written right after each round's plan is decided, with no await since it was read, so
two adapters cannot both take the last free slot of a pod.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from modeladapter.adapters.base import LoadRequest
from modeladapter.fsm.calls import at, listings_due, plan_load_outcomes, plan_unload_outcomes, unloads_due
from modeladapter.fsm.observations import Desired, Listed
from modeladapter.fsm.phases import Phase, PhaseTrigger
from modeladapter.fsm.planning import (
    Restart,
    another_round,
    plan_convergence,
    plan_observations,
    plan_phase,
    plan_truthfulness,
)
from modeladapter.fsm.plans import CallOutcome, Pods
from modeladapter.fsm.progress import Target
from modeladapter.fsm.rollout import SLICE_NOT_UPDATED, SLICE_STILL_LISTS, rolling
from modeladapter.operator.api.spec import AdapterSpec, SpecProblem
from modeladapter.operator.api.view import AdapterObject
from modeladapter.operator.reconcile.context import Context
from modeladapter.operator.reconcile.engine_calls import EngineCalls
from modeladapter.operator.reconcile.observing import Sight
from modeladapter.operator.reconcile.passes import Pass
from modeladapter.operator.reconcile.publishing import Counts
from modeladapter.operator.reconcile.secrets import read_credentials


async def converge(
    ctx: Context, step: Pass, adapter: AdapterObject, spec: AdapterSpec, *, fresh_spec: bool
) -> timedelta | None:
    credentials = await read_credentials(ctx.kube, adapter, spec)
    if isinstance(credentials, SpecProblem):
        await fail(ctx, step, adapter, reason=credentials.reason, problem=credentials)
        return ctx.settings.secret_retry
    planning = ctx.settings
    failed_for = step.state.phase_reason if step.state.phase is Phase.FAILED else None
    calls = ctx.calls(adapter.labels, credentials)
    sight = ctx.look(adapter.ref, spec.pod_selector)
    seed = uuid.uuid4().hex

    # What the pods and the engines say.
    observation = sight.observe(now=step.now, index=ctx.index, seed=seed)
    due = listings_due(step.state, observation, planning, verified_at=ctx.verified.get(step.uid, {}))
    if due:
        artifacts = {p.pod: p.artifact_url or spec.artifact_url for p in step.state.placements}
        listings = await calls.listings([sight.pods[pod] for pod in due], name=spec.lora_name, artifacts=artifacts)
        ctx.tick(step)
        ctx.confirmed(step.uid, [pod for pod, listing in listings.items() if listing.listed is Listed.LOADED], step.now)
    else:
        listings = {}
    step.take(plan_observations(step.state, at(observation, step.now), planning, listings=listings))

    # What to place and load, in rounds.
    restart = Restart(
        failed_for=failed_for, fresh_spec=fresh_spec, tried=frozenset(p.pod for p in step.state.placements)
    )
    desired = Desired(
        artifact_url=spec.artifact_url,
        replicas=spec.replicas,
        policy=spec.scheduler,
        lora_name=spec.lora_name,
        selector=spec.pod_selector.render(),
        max_unavailable=spec.update_strategy.max_unavailable,
        max_surge=spec.update_strategy.max_surge,
    )
    candidates = Pods(observation, planning)
    counts = Counts(candidates=len(candidates.healthy), desired=0)
    request = LoadRequest(
        name=spec.lora_name,
        artifact_url=spec.artifact_url,
        credentials=dict(credentials.artifact),
        additional_config=dict(adapter.additional_config),
    )
    for round_ in range(len(candidates.schedulable) + 1):
        observation = sight.observe(now=step.now, index=ctx.index, seed=seed)
        plan = plan_convergence(
            step.state, observation, desired, planning, restart=restart, reconsider_now=fresh_spec and round_ == 0
        )
        step.take(plan)
        ctx.index.record(step.uid, adapter.ref.namespace, step.state)
        counts = Counts(candidates=counts.candidates, desired=plan.desired)
        if not plan.loads:
            break
        await ctx.journal.append(step)  # write ahead: the log knows which loads start before the engines do
        replacing = {pod: p.replacing for pod in plan.loads if (p := step.state.placement(pod)) and p.replacing}
        out_of_the_slice = await ctx.publisher.before_calls(
            step, adapter, sight.pods, counts, calling=replacing, drain=ctx.settings.drain
        )
        held = [] if out_of_the_slice else [pod for pod in plan.loads if pod in replacing]
        outcomes = await calls.loads(
            [sight.pods[pod] for pod in plan.loads if pod not in held], request, replacing=replacing
        )
        step.load_calls.extend(outcomes.values())
        # A pod the EndpointSlice may still list is not touched; its update is made again after the backoff.
        outcomes.update({pod: CallOutcome(error=SLICE_NOT_UPDATED, retriable=True) for pod in held})
        ctx.tick(step)
        step.take(plan_load_outcomes(step.state, at(observation, step.now), planning, outcomes))
        ctx.confirmed(step.uid, [pod for pod, outcome in outcomes.items() if outcome.error is None], step.now)
        if not another_round(plan.after, step.state, observation, planning) and not rolling(step.state):
            break

    await unload_what_is_due(ctx, step, sight, calls, name=spec.lora_name, publish=(adapter, counts))
    observation = sight.observe(now=step.now, index=ctx.index, seed=seed)
    step.take(plan_phase(step.state, observation, planning, blocked=plan.blocked, restart=restart))
    service_ready = await ctx.publisher.endpoints(step, adapter, sight.pods)
    step.take(
        plan_phase(
            step.state, observation, planning, service_ready=service_ready, blocked=plan.blocked, restart=restart
        )
    )
    await ctx.finish(step, adapter, counts)
    ctx.index.record(step.uid, adapter.ref.namespace, step.state)
    ctx.keep_verified_only_for_loaded(step.uid, step.state)
    return ctx.next_look(step, at(observation, step.now), service_ready=service_ready)


async def unload_what_is_due(
    ctx: Context,
    step: Pass,
    sight: Sight,
    calls: EngineCalls,
    *,
    name: str,
    publish: tuple[AdapterObject, Counts] | None,
) -> None:
    """The unloads whose time has come, written ahead, then called (a 404 counts as unloaded). `publish`: the
    object whose status and endpoints go out first if the instances changed (None: the object is gone)."""
    due = unloads_due(step.state, now=step.now)
    if not due:
        return
    await ctx.journal.append(step)
    listed: set[str] = set()
    if publish is not None:
        adapter, counts = publish
        drain = timedelta(0) if adapter.deleting else ctx.settings.drain  # a deleted adapter serves no one
        if not await ctx.publisher.before_calls(step, adapter, sight.pods, counts, calling=due, drain=drain):
            listed = set(step.state.endpoints or ())
    reachable = [sight.pods[pod] for pod in due if pod in sight.pods and sight.pods[pod].ip]
    held = {pod.name for pod in reachable if pod.ip in listed}
    outcomes = await calls.unloads([pod for pod in reachable if pod.name not in held], name=name)
    # A pod the EndpointSlice still lists keeps the adapter until it is out of it: the unload is tried again.
    outcomes.update({pod: CallOutcome(error=SLICE_STILL_LISTS, retriable=True) for pod in held})
    ctx.tick(step)
    observation = sight.observe(now=step.now, index=ctx.index)
    step.take(plan_unload_outcomes(step.state, observation, ctx.settings, due=due, outcomes=outcomes))


async def fail(ctx: Context, step: Pass, adapter: AdapterObject, *, reason: str, problem: SpecProblem) -> None:
    """The spec cannot be acted on: say so, naming the field. What is loaded stays until the spec changes, but
    deleted and unhealthy pods still leave the instances and the EndpointSlice."""
    planning = ctx.settings
    sight = ctx.look(adapter.ref)
    observation = sight.observe(now=step.now, index=ctx.index)
    step.take(plan_truthfulness(step.state, observation, planning))
    if step.state.endpoints is not None:
        await ctx.publisher.endpoints(step, adapter, sight.pods)
    to = Target(Phase.FAILED, reason, problem.message, failure=PhaseTrigger.SPEC_INVALID)
    step.take(plan_phase(step.state, observation, planning, to=to))
    await ctx.finish(step, adapter, Counts(candidates=0, desired=0))
