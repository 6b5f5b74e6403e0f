"""What keeps the event log the truth: a load is in the log before the engine hears of it, a load a restart cut
short is settled by asking the engine, another writer's append stops the pass once and cleanly, and a step the
state machines reject is a bug that raises."""

from __future__ import annotations

from datetime import timedelta

import pytest

from modeladapter.fsm.events import LoadSucceeded, PodLost, stamp
from modeladapter.fsm.facts import Facts
from modeladapter.fsm.phases import PlacementTrigger
from modeladapter.fsm.plans import Fire, Plan
from modeladapter.fsm.state import AdapterState
from modeladapter.operator.api.view import AdapterRef
from modeladapter.operator.kube.events import EventRecorder
from modeladapter.operator.reconcile.passes import Pass, RejectedStep
from modeladapter.operator.reconcile.reconciler import Reconciler
from tests.e2e.conftest import adapter_manifest as manifest
from tests.reconcile.conftest import SETTINGS, World
from tests.reconcile.engines import Operation


async def test_a_load_is_in_the_log_before_the_engine_is_called(world: World) -> None:
    engine = world.add_pod("pod-0")
    world.apply(manifest(replicas=1))
    uid = world.uid()
    logged_at_call: list[list[str]] = []

    async def look(operation: Operation, name: str) -> None:
        if operation == "load":
            logged_at_call.append([type(e).__name__ for e in await world.events(uid=uid)])

    engine.on_call = look
    await world.reconcile()
    assert logged_at_call and logged_at_call[0][-3:] == ["PlacementChanged", "PhaseChanged", "PhaseChanged"]
    assert "LoadStarted" in logged_at_call[0] and "LoadSucceeded" not in logged_at_call[0]


async def test_a_load_cut_short_by_a_restart_is_settled_by_the_engines_listing_not_loaded_again(world: World) -> None:
    engine = world.add_pod("pod-0")
    world.apply(manifest(replicas=1))
    uid = world.uid()

    async def crash(operation: Operation, name: str) -> None:
        if operation == "load":
            raise OperatorDied("the operator dies while the engine loads")

    engine.on_call = crash
    with pytest.raises(OperatorDied):
        await world.reconcile()
    engine.served["qwen-code-lora"] = "ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora"  # the load did land
    engine.on_call = None
    after_restart = restarted(world)
    await after_restart.reconcile()
    succeeded = [e for e in await world.events(uid=uid) if isinstance(e, LoadSucceeded)]
    assert [s.duration_ms for s in succeeded] == [0.0], "settled by the listing, not by a second load"
    assert engine.count("load") == 1 and after_restart.status()["phase"] == "Running"


async def test_another_writer_appending_first_stops_the_pass_once_and_the_next_one_reads_the_log_again(
    world: World,
) -> None:
    engine = world.add_pod("pod-0")
    world.apply(manifest(replicas=1))
    uid = world.uid()

    async def split_brain(operation: Operation, name: str) -> None:
        # While this pass waits for the engine, another operator appends to the same stream.
        if operation == "load":
            version = (await world.state(uid=uid)).version
            other = stamp(
                [PodLost(pod="pod-0", reason="seen elsewhere")],
                at=world.clock(),
                reconcile_id="other",
                observed_generation=1,
            )
            await world.store.append(uid, other, expected_version=version, namespace="default", name="qwen-code-lora")

    engine.on_call = split_brain
    result = await world.reconcile()
    assert result.conflict and result.requeue_after == timedelta(0)
    assert not any(isinstance(e, LoadSucceeded) for e in await world.events()), "the pass stopped at the conflict"
    engine.on_call = None
    again = await world.reconcile()
    assert not again.conflict and world.status()["phase"] == "Running"
    assert "seen elsewhere" in [e.reason for e in await world.events() if isinstance(e, PodLost)]


async def test_a_step_the_state_machines_reject_raises_instead_of_being_skipped(world: World) -> None:
    world.add_pod("pod-0")
    world.apply(manifest(replicas=1))
    await world.reconcile()
    state = await world.state()
    step = Pass(
        ref=AdapterRef(world.uid(), "default", "qwen-code-lora"), base=state, now=world.clock(), reconcile_id="r"
    )
    # A planner bug: starting a load on a placement that is already loaded.
    wrong = Plan(
        before=step.state,
        steps=(Fire("start_loads", PlacementTrigger.START_LOAD, Facts(now=world.clock(), pod="pod-0")),),
        after=state,
    )
    with pytest.raises(RejectedStep, match="start_load.*not accepted in state 'Loaded'"):
        step.take(wrong)
    with pytest.raises(RejectedStep, match="another state"):
        step.take(Plan(before=AdapterState(), steps=(), after=state))


class OperatorDied(Exception):
    """The process ends in the middle of a pass (what a SIGKILL leaves behind)."""


def restarted(world: World) -> World:
    """The same cluster, engines and log, and a new reconciler with empty memory (a restarted operator)."""
    recorder = EventRecorder(world.cluster.kube)
    reconciler = Reconciler(
        kube=world.cluster.kube,
        store=world.store,
        engines=world.engines,
        cluster=world.cluster,
        recorder=recorder,
        settings=SETTINGS,
        clock=world.clock,
    )
    return World(world.cluster, world.engines, world.store, world.clock, reconciler, recorder, world.ips)
