"""A ModelAdapter that is deleted, or that vanished from the cluster without us: unload it from every pod,
then end its stream.

* **deleted** (a deletionTimestamp, our finalizer on it): the phase goes to `Terminating`; every placement is
  unloaded, bounded by a deadline counted from the deletion (a pod that is gone counts as unloaded); once none
  is left the log records `Finalized`, and only then is the finalizer removed. Without our finalizer the
  object never waited for us: its stream simply ends.
* **orphaned** (the object is gone, its stream is not finalized: it was forced off while the operator was away):
  what can be unloaded is, with the API key from the Secret the log recorded (`SpecObserved.api_key_secret`,
  read again; an inline key was never recorded), then the stream ends.

An unload given up at its deadline leaves an engine that may still serve a deleted adapter: a Warning Event
(`UnloadAbandoned`) says so, and `modeladapter verify` reports it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from modeladapter.fsm.calls import at
from modeladapter.fsm.phases import Phase
from modeladapter.fsm.planning import plan_finalization, plan_phase, plan_retirement
from modeladapter.fsm.progress import Target
from modeladapter.operator.api.spec import AdapterSpec
from modeladapter.operator.api.view import AdapterObject
from modeladapter.operator.kube.client import Conflict, KubeError, NotFound
from modeladapter.operator.reconcile.context import Context
from modeladapter.operator.reconcile.converging import unload_what_is_due
from modeladapter.operator.reconcile.finalizers import release_finalizer
from modeladapter.operator.reconcile.passes import Pass
from modeladapter.operator.reconcile.publishing import Counts
from modeladapter.operator.reconcile.secrets import NO_CREDENTIALS, Credentials, read_credentials, read_recorded_key

log = logging.getLogger(__name__)

ONE_SECOND = timedelta(seconds=1)
NOTHING = Counts(candidates=0, desired=0)
TERMINATING = Target(Phase.TERMINATING, "Terminating", "unloading from every pod")


async def terminate(ctx: Context, step: Pass, adapter: AdapterObject) -> timedelta | None:
    planning = ctx.settings
    if not adapter.has_finalizer:
        # Never ours to hold (or already released): the stream ends with the object.
        step.take(plan_finalization(step.state, now=step.now, placements_left=True))
        await ctx.journal.append(step)
        return None
    sight = ctx.look(adapter.ref)
    observation = sight.observe(now=step.now, index=ctx.index)
    step.take(plan_phase(step.state, observation, planning, to=TERMINATING))
    deadline = (adapter.deletion_timestamp or step.now) + ctx.settings.unload_timeout
    credentials: Credentials = NO_CREDENTIALS
    if isinstance(adapter.spec, AdapterSpec):
        read = await read_credentials(ctx.kube, adapter, adapter.spec)
        credentials = read if isinstance(read, Credentials) else NO_CREDENTIALS
    step.take(plan_retirement(step.state, observation, planning, deadline=deadline))
    calls = ctx.calls(adapter.labels, credentials)
    await unload_what_is_due(ctx, step, sight, calls, name=adapter.ref.name, publish=(adapter, NOTHING))
    if step.state.placements:
        await ctx.finish(step, adapter, NOTHING)
        return ctx.next_look(step, at(observation.without_pods(), step.now), service_ready=True) or ONE_SECOND
    # The log says Finalized before the finalizer goes: a crash in between finds a finalized stream and only
    # has to remove the finalizer.
    step.take(plan_finalization(step.state, now=step.now))
    await ctx.journal.append(step)
    try:
        await release_finalizer(ctx.kube, adapter)
    except NotFound:
        pass
    except Conflict:
        # The object changed since it was read (often our own status patch): read afresh and remove it then.
        log.debug("finalizer of %s: the object changed meanwhile; trying again", adapter.ref.key)
        return ONE_SECOND
    except KubeError as error:
        log.warning("could not remove the finalizer of %s: %s", adapter.ref.key, error)
        return ONE_SECOND
    ctx.forget(step.uid)
    return None


async def retire_orphan(ctx: Context, step: Pass) -> timedelta | None:
    planning = ctx.settings
    sight = ctx.look(step.ref)
    observation = sight.observe(now=step.now, index=ctx.index)
    step.take(plan_retirement(step.state, observation, planning, deadline=step.now + ctx.settings.unload_timeout))
    credentials = await read_recorded_key(ctx.kube, step.ref.namespace, step.state.spec)
    calls = ctx.calls({}, credentials)
    await unload_what_is_due(ctx, step, sight, calls, name=step.ref.name, publish=None)
    step.take(plan_finalization(step.state, now=step.now))
    await ctx.journal.append(step)
    if step.state.finalized:
        ctx.forget(step.uid)
        return None
    return ctx.next_look(step, at(observation.without_pods(), step.now), service_ready=True) or ONE_SECOND
