"""The rollout rules, one table row each: how an `artifactURL` change moves over the pods (`fsm/rollout.py`).

Every case starts from a folded state and an observation, and reads what the planner decided: which pods are
taken out, surged onto or retired, and which rollout facts are recorded.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from modeladapter.fsm.events import (
    InstanceUpdated,
    LoadStarted,
    RolloutFinished,
    RolloutHalted,
    RolloutResumed,
    RolloutStarted,
)
from modeladapter.fsm.facts import Facts
from modeladapter.fsm.machine import decide
from modeladapter.fsm.observations import Desired, Listed, Listing
from modeladapter.fsm.phases import PlacementTrigger
from modeladapter.fsm.planning import plan_convergence, plan_observations
from modeladapter.fsm.plans import Plan, Record
from modeladapter.fsm.state import AdapterState, Placement, Rollout
from modeladapter.fsm.wording import progress_condition
from tests.reconcile.planning_inputs import (
    ARTIFACT,
    NEWER,
    NOW,
    SETTINGS,
    S,
    adapter,
    desired,
    fired,
    observe,
    placement,
    pod,
    rules,
)


def update(
    *, replicas: int | None = None, max_unavailable: int = 1, max_surge: int = 1, artifact: str = NEWER
) -> Desired:
    return replace(desired(replicas=replicas, artifact=artifact), max_unavailable=max_unavailable, max_surge=max_surge)


def old(name: str, *, minutes_ago: float = 5) -> Placement:
    return placement(name, S.LOADED, artifact=ARTIFACT, since=NOW - timedelta(minutes=minutes_ago))


def new(name: str, state: S = S.LOADED, **changes: object) -> Placement:
    return replace(placement(name, state, artifact=NEWER), **changes)  # type: ignore[arg-type]


def rolling(*placements: Placement, halted_on: str | None = None, replicas: int | None = None) -> AdapterState:
    rollout = Rollout(
        to_artifact=NEWER,
        from_artifacts=(ARTIFACT,),
        started_at=NOW - timedelta(seconds=30),
        max_unavailable=1,
        max_surge=1,
        halted_on=halted_on,
        halted_error="ArtifactNotFound: nothing there" if halted_on else None,
    )
    return replace(adapter(*placements, replicas=replicas), rollout=rollout)


def recorded(plan: Plan) -> list[object]:
    return [step.event for step in plan.steps if isinstance(step, Record)]


def taken_out(plan: Plan) -> list[str]:
    return [p.pod for p in plan.after.placements if p.state is S.LOADING and p.replacing is not None]


# --- in place -------------------------------------------------------------------------------------------------


def test_a_new_artifact_starts_a_rollout_that_updates_the_oldest_instance_first() -> None:
    state = adapter(old("a", minutes_ago=3), old("b", minutes_ago=9), old("c", minutes_ago=6), replicas=None)
    plan = plan_convergence(state, observe(pod("a"), pod("b"), pod("c")), update(), SETTINGS)
    (started,) = [e for e in recorded(plan) if isinstance(e, RolloutStarted)]
    assert started.from_artifacts == (ARTIFACT,) and started.to_artifact == NEWER and started.instances == 3
    assert taken_out(plan) == ["b"] and plan.loads == ("b",)
    assert "update_in_place" in rules(plan)


def test_the_reload_of_an_update_records_what_the_pod_served_before() -> None:
    state = adapter(old("a"), replicas=None)
    plan = plan_convergence(state, observe(pod("a")), update(), SETTINGS)
    (load,) = plan.after.placements
    assert load.replacing == ARTIFACT and load.artifact_url == NEWER


@pytest.mark.parametrize(
    ("max_unavailable", "pods", "out"),
    [
        (1, 3, 1),
        (2, 3, 2),
        (5, 3, 2),  # never the last of several
        (1, 1, 1),  # the only instance, with nowhere to surge: the one unavoidable gap
        (0, 3, 0),  # maxUnavailable 0 waits for a pod to surge onto
    ],
    ids=["one at a time", "two at a time", "never the last of several", "the only one", "none without a surge"],
)
def test_in_place_takes_out_at_most_max_unavailable(max_unavailable: int, pods: int, out: int) -> None:
    names = [f"p{i}" for i in range(pods)]
    state = adapter(*(old(n, minutes_ago=10 - i) for i, n in enumerate(names)), replicas=None)
    plan = plan_convergence(state, observe(*(pod(n) for n in names)), update(max_unavailable=max_unavailable), SETTINGS)
    assert len(taken_out(plan)) == out


def test_an_instance_out_for_its_update_counts_against_the_budget() -> None:
    state = rolling(new("a", S.LOADING, replacing=ARTIFACT), old("b"), old("c"))
    plan = plan_convergence(state, observe(pod("a"), pod("b"), pod("c")), update(), SETTINGS)
    assert taken_out(plan) == ["a"], "b and c wait until a serves again"


def test_pods_that_already_serve_the_new_artifact_are_never_reloaded() -> None:
    """What an operator restarted in the middle of a rollout sees: the log says which pods are done."""
    state = rolling(new("a"), new("b"), old("c"))
    plan = plan_convergence(state, observe(pod("a"), pod("b"), pod("c")), update(), SETTINGS)
    assert taken_out(plan) == ["c"] and fired(plan, "a") == [] and fired(plan, "b") == []


# --- surge ----------------------------------------------------------------------------------------------------


def test_with_replicas_and_a_free_pod_the_new_artifact_surges_onto_it_first() -> None:
    state = adapter(old("a"), replicas=1)
    plan = plan_convergence(state, observe(pod("a"), pod("free")), update(replicas=1), SETTINGS)
    assert fired(plan, "free") == ["assign", "start_load"] and fired(plan, "a") == []
    assert "surge_update" in rules(plan) and "update_in_place" not in rules(plan)


def test_once_the_surged_instance_serves_an_old_one_retires() -> None:
    state = rolling(old("a"), new("free", since=NOW - timedelta(seconds=1)), replicas=1)
    plan = plan_convergence(state, observe(pod("a"), pod("free")), update(replicas=1), SETTINGS)
    assert fired(plan, "a") == ["unload"]
    (updated,) = [e for e in recorded(plan) if isinstance(e, InstanceUpdated)]
    assert (updated.pod, updated.replaced_pod, updated.previous) == ("free", "a", ARTIFACT)


def test_without_a_free_pod_a_surge_falls_back_to_in_place() -> None:
    state = adapter(old("a"), old("b"), replicas=2)
    plan = plan_convergence(state, observe(pod("a"), pod("b")), update(replicas=2), SETTINGS)
    assert len(taken_out(plan)) == 1 and "surge_update" not in rules(plan)


def test_while_a_retired_instance_unloads_its_pod_is_awaited_rather_than_another_taken_out() -> None:
    state = rolling(new("c"), placement("a", S.UNLOADING, artifact=ARTIFACT), old("b"), replicas=2)
    plan = plan_convergence(state, observe(pod("a"), pod("b"), pod("c")), update(replicas=2), SETTINGS)
    assert taken_out(plan) == [] and plan.loads == ()


# --- halting --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("failed", [S.BACKOFF, S.EXHAUSTED])
def test_a_new_artifact_that_fails_on_a_pod_halts_the_rollout(failed: S) -> None:
    state = rolling(
        new("a", failed, last_error="ArtifactNotFound: nothing there", replacing=ARTIFACT), old("b"), old("c")
    )
    plan = plan_convergence(state, observe(pod("a"), pod("b"), pod("c")), update(), SETTINGS)
    (halt,) = [e for e in recorded(plan) if isinstance(e, RolloutHalted)]
    assert (halt.pod, halt.serving_old) == ("a", 2) and "nothing there" in halt.error
    assert taken_out(plan) == [] and fired(plan, "b") == [] and fired(plan, "c") == []


def test_a_halted_rollout_touches_no_other_pod_until_the_failed_one_serves() -> None:
    state = rolling(new("a", S.EXHAUSTED, replacing=ARTIFACT), old("b"), old("c"), halted_on="a")
    plan = plan_convergence(state, observe(pod("a"), pod("b"), pod("c")), update(), SETTINGS)
    assert recorded(plan) == [] and taken_out(plan) == []


def test_a_halted_surge_keeps_trying_its_pod_and_adds_none() -> None:
    state = rolling(
        new("free", S.BACKOFF, next_retry_at=NOW + timedelta(seconds=9)), old("a"), halted_on="free", replicas=1
    )
    plan = plan_convergence(state, observe(pod("a"), pod("free"), pod("other")), update(replicas=1), SETTINGS)
    assert plan.steps == () or all(step.rule == "walk_phase" for step in plan.steps)


def test_the_halt_lifts_once_the_failed_pod_serves_the_new_artifact() -> None:
    state = rolling(new("a"), old("b"), old("c"), halted_on="a")
    plan = plan_convergence(state, observe(pod("a"), pod("b"), pod("c")), update(), SETTINGS)
    assert [type(e) for e in recorded(plan)] == [RolloutResumed]
    assert len(taken_out(plan)) == 1, "and the rollout goes on in the same round"


def test_a_fixed_url_starts_the_rollout_again_towards_it() -> None:
    fixed = f"{NEWER}-fixed"
    state = rolling(new("a", S.EXHAUSTED), old("b"), old("c"), halted_on="a")
    plan = plan_convergence(state, observe(pod("a"), pod("b"), pod("c")), update(artifact=fixed), SETTINGS)
    (started,) = [e for e in recorded(plan) if isinstance(e, RolloutStarted)]
    assert started.to_artifact == fixed and plan.after.rollout is not None and plan.after.rollout.halted_on is None


# --- finishing ------------------------------------------------------------------------------------------------


def test_a_rollout_finishes_when_no_instance_serves_an_older_artifact() -> None:
    plan = plan_convergence(rolling(new("a"), new("b")), observe(pod("a"), pod("b")), update(), SETTINGS)
    (finished,) = [e for e in recorded(plan) if isinstance(e, RolloutFinished)]
    assert (finished.artifact, finished.instances, finished.rolled_back) == (NEWER, 2, False)


def test_the_old_url_back_reloads_the_failed_pod_and_then_finishes_as_rolled_back() -> None:
    state = rolling(new("a", S.EXHAUSTED, replacing=ARTIFACT), old("b"), old("c"), halted_on="a")
    pods = observe(pod("a"), pod("b"), pod("c"))
    back = update(artifact=ARTIFACT)
    plan = plan_convergence(state, pods, back, SETTINGS, reconsider_now=True)
    assert plan.loads == ("a",) and plan.after.placement("a").artifact_url == ARTIFACT  # type: ignore[union-attr]
    assert not any(isinstance(e, RolloutFinished) for e in recorded(plan)), "not before the failed pod serves"
    served = rolling(old("a"), old("b"), old("c"), halted_on="a")
    (finished,) = [
        e for e in recorded(plan_convergence(served, pods, back, SETTINGS)) if isinstance(e, RolloutFinished)
    ]
    assert finished.rolled_back and (finished.artifact, finished.instances) == (ARTIFACT, 3)


def test_a_one_instance_update_that_fails_in_place_halts_and_does_not_finish() -> None:
    state = rolling(new("a", S.EXHAUSTED, replacing=ARTIFACT, last_error="IncompatibleAdapter: rank 64"))
    plan = plan_convergence(state, observe(pod("a")), update(), SETTINGS)
    assert [type(e) for e in recorded(plan)] == [RolloutHalted]
    assert plan.after.rollout is not None and plan.after.rollout.in_progress


def test_a_retry_of_an_update_still_knows_what_it_replaces() -> None:
    state = rolling(new("a", S.BACKOFF, next_retry_at=NOW - timedelta(seconds=1), replacing=ARTIFACT), old("b"))
    plan = plan_convergence(state, observe(pod("a"), pod("b")), update(), SETTINGS)
    assert fired(plan, "a")[:1] == ["retry_due"]
    assert plan.after.placement("a").replacing == ARTIFACT  # type: ignore[union-attr]


def test_an_update_load_is_written_ahead_with_the_artifact_it_replaces() -> None:

    events = decide(adapter(old("a")), PlacementTrigger.RELOAD, Facts(now=NOW, pod="a", artifact_url=NEWER))
    (started,) = [e for e in events if isinstance(e, LoadStarted)]
    assert (started.artifact_url, started.replacing) == (NEWER, ARTIFACT)


# --- what the review found ------------------------------------------------------------------------------------


def test_replicas_missing_for_other_reasons_do_not_stall_the_update() -> None:
    """`replicas: 3` on two pods: the missing third one is not "out for its update"."""
    state = adapter(old("a", minutes_ago=9), old("b"), replicas=3)
    plan = plan_convergence(state, observe(pod("a"), pod("b")), update(replicas=3), SETTINGS)
    assert taken_out(plan) == ["a"]


def test_a_halted_rollout_goes_on_with_the_next_pod_when_its_pod_leaves() -> None:
    """Nothing could lift the halt on a pod that is gone: the next pod tries the new artifact afresh."""
    state = rolling(old("b", minutes_ago=9), old("c"), halted_on="a")
    plan = plan_convergence(state, observe(pod("b"), pod("c")), update(), SETTINGS)
    assert recorded(plan) == [RolloutResumed(pod="a", left=True)]
    assert taken_out(plan) == ["b"], "one pod at a time, as before the halt"


def test_the_rested_pod_a_surge_halted_on_is_tried_again_not_let_go() -> None:
    """No replica is missing while it rests, yet letting it go would hand the failing artifact to the next pod."""
    rested = new("free", S.EXHAUSTED, replacing=ARTIFACT, next_retry_at=NOW - timedelta(seconds=1))
    state = rolling(rested, old("a"), halted_on="free", replicas=1)
    plan = plan_convergence(state, observe(pod("a"), pod("free"), pod("other")), update(replicas=1), SETTINGS)
    assert plan.after.placement("free").state is S.LOADING  # type: ignore[union-attr]
    assert not any(isinstance(e, RolloutResumed) for e in recorded(plan)) and fired(plan, "other") == []


def test_a_halted_rollout_whose_pod_is_lost_but_not_gone_stays_halted() -> None:
    """An unready pod may come back and be repaired there: the halt waits for it."""
    state = rolling(new("a", S.LOST, replacing=ARTIFACT), old("b"), old("c"), halted_on="a")
    plan = plan_convergence(state, observe(pod("b"), pod("c")), update(), SETTINGS)
    assert not any(isinstance(e, RolloutResumed) for e in recorded(plan)) and taken_out(plan) == []


def test_a_pod_that_failed_for_its_own_reasons_neither_halts_nor_holds_up_the_rollout() -> None:
    """x never served the old artifact: its retry with the new one is a plain load, not an update."""
    state = adapter(
        old("a", minutes_ago=9),
        old("b"),
        placement("x", S.EXHAUSTED, artifact=ARTIFACT, error="too many loras"),
        replicas=None,
    )
    plan = plan_convergence(state, observe(pod("a"), pod("b"), pod("x")), update(), SETTINGS, reconsider_now=True)
    assert plan.after.placement("x").replacing is None  # type: ignore[union-attr]
    assert taken_out(plan) == ["a"] and not any(isinstance(e, RolloutHalted) for e in recorded(plan))


def test_halted_no_free_pod_is_surged_onto_nor_given_the_new_artifact() -> None:
    failed = new("a", S.BACKOFF, replacing=ARTIFACT, next_retry_at=NOW + timedelta(seconds=9))
    state = rolling(failed, old("b"), old("c"), halted_on="a", replicas=3)
    plan = plan_convergence(state, observe(pod("a"), pod("b"), pod("c"), pod("d")), update(replicas=3), SETTINGS)
    assert fired(plan, "d") == [] and taken_out(plan) == []


def test_a_surge_load_names_the_artifact_it_replaces() -> None:
    """The pod may have held that version before: behind the runtime its cached blocks must go."""
    plan = plan_convergence(adapter(old("a"), replicas=1), observe(pod("a"), pod("b")), update(replicas=1), SETTINGS)
    assert plan.after.placement("b").replacing == ARTIFACT  # type: ignore[union-attr]


def test_going_back_to_the_old_url_reloads_the_failed_pod_as_a_plain_load() -> None:
    state = rolling(new("a", S.EXHAUSTED, replacing=ARTIFACT), old("b"), halted_on="a")
    plan = plan_convergence(
        state, observe(pod("a"), pod("b")), update(artifact=ARTIFACT), SETTINGS, reconsider_now=True
    )
    assert plan.loads == ("a",) and plan.after.placement("a").replacing is None  # type: ignore[union-attr]


def test_an_update_a_restart_cut_short_is_made_again_and_does_not_halt() -> None:
    state = rolling(new("a", S.LOADING, replacing=ARTIFACT), old("b"))
    pods = observe(pod("a"), pod("b"))
    settled = plan_observations(state, pods, SETTINGS, listings={"a": Listing(Listed.LOADED)})
    assert fired(settled, "a") == ["load_failed"], "the runtime's listing cannot tell the versions apart"
    plan = plan_convergence(settled.after, pods, update(), SETTINGS)
    assert not any(isinstance(e, RolloutHalted) for e in recorded(plan))


def test_going_back_mid_rollout_is_a_rollback_and_finishes_as_one() -> None:
    state = rolling(new("a"), old("b"))
    plan = plan_convergence(state, observe(pod("a"), pod("b")), update(artifact=ARTIFACT), SETTINGS)
    (started,) = [e for e in recorded(plan) if isinstance(e, RolloutStarted)]
    assert started.rollback and started.to_artifact == ARTIFACT
    done = replace(adapter(old("a"), old("b"), replicas=None), rollout=plan.after.rollout)
    (finished,) = [
        e
        for e in recorded(plan_convergence(done, observe(pod("a"), pod("b")), update(artifact=ARTIFACT), SETTINGS))
        if isinstance(e, RolloutFinished)
    ]
    assert finished.rolled_back


def test_the_rolled_back_condition_names_the_artifact_the_instances_serve() -> None:
    rollout = replace(rolling().rollout, finished_at=NOW, rolled_back=True, finished_artifact=ARTIFACT)  # type: ignore[type-var]
    condition = progress_condition(replace(adapter(old("a")), rollout=rollout))
    assert condition is not None and condition[1] == "RolledBack" and condition[2].endswith(ARTIFACT)
