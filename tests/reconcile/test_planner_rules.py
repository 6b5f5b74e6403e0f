"""Each rule of the planner, as input (a folded state and what the operator saw) → the triggers it fires.

Pure: no cluster, no engines, no log; the time is `NOW`. The rules are declared in `fsm/rules.py`, in the
order a reconcile applies them; `test_placement_matrix.py` covers every placement state against every kind of
observation at once.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from modeladapter.fsm.calls import (
    listings_due,
    next_look,
    plan_endpoints,
    plan_load_outcomes,
    plan_unload_outcomes,
    unloads_due,
)
from modeladapter.fsm.events import Finalized, ServiceBound, SpecObserved, SpecRejected
from modeladapter.fsm.observations import Listed, Listing
from modeladapter.fsm.phases import Phase, PlacementTrigger
from modeladapter.fsm.planning import (
    Restart,
    another_round,
    plan_admission,
    plan_convergence,
    plan_finalization,
    plan_observations,
    plan_phase,
    plan_retirement,
    plan_truthfulness,
)
from modeladapter.fsm.plans import CallOutcome, Fire, Planner, Record, UndeclaredTrigger
from modeladapter.fsm.progress import Blocked
from modeladapter.fsm.rules import RETIRE_GONE, RULES
from modeladapter.fsm.state import AdapterState
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

SPEC = SpecObserved(generation=1, artifact_url=ARTIFACT, replicas=1, scheduler_name="default", pod_selector="app=vllm")


# --- the spec --------------------------------------------------------------------------------------------------


def test_observe_spec_records_a_generation_not_seen_before_and_its_problem() -> None:
    rejection = SpecRejected(generation=2, field="spec.artifactURL", rule="unsupported scheme", message="m")
    seen = adapter()
    plan = plan_admission(seen, spec=SPEC.model_copy(update={"generation": 2}), rejection=rejection, now=NOW)
    assert [type(s.event).__name__ for s in plan.steps if isinstance(s, Record)] == ["SpecObserved", "SpecRejected"]
    assert plan.after.spec_rejected
    assert plan_admission(seen, spec=SPEC, rejection=None, now=NOW).steps == ()


def test_admit_starts_a_new_stream_pending() -> None:
    plan = plan_admission(AdapterState(), spec=SPEC, rejection=None, now=NOW)
    assert rules(plan) == ["observe_spec", "admit"]
    assert plan.after.phase is Phase.PENDING and plan.after.phase_reason == "ModelAdapterPending"


# --- what the pods and the engines say --------------------------------------------------------------------------


@pytest.mark.parametrize("state", [S.ASSIGNED, S.LOADING, S.BACKOFF, S.LOADED, S.EXHAUSTED, S.LOST, S.UNLOADING])
def test_retire_gone_takes_a_placement_with_its_deleted_pod_whatever_its_state(state: S) -> None:
    plan = plan_observations(adapter(placement("p", state)), observe(), SETTINGS, listings={})
    assert fired(plan, "p") == ["pod_gone"]
    assert plan.after.placements == ()


def test_unload_unselected_gives_the_adapter_back_on_a_pod_the_selector_left() -> None:
    plan = plan_observations(adapter(placement("p", S.LOADED)), observe(pod("p", matches=False)), SETTINGS, listings={})
    assert fired(plan, "p") == ["unload"]
    unloading = adapter(placement("p", S.UNLOADING))
    assert fired(plan_observations(unloading, observe(pod("p", matches=False)), SETTINGS, listings={}), "p") == []


def test_lose_unhealthy_takes_an_instance_off_a_pod_that_is_not_ready_but_leaves_an_exhausted_one_resting() -> None:
    plan = plan_observations(adapter(placement("p", S.LOADED)), observe(pod("p", ready=False)), SETTINGS, listings={})
    assert fired(plan, "p") == ["pod_lost"] and plan.after.instances == ()
    resting = adapter(placement("p", S.EXHAUSTED, retry_at=NOW + timedelta(minutes=1)))
    assert fired(plan_observations(resting, observe(pod("p", ready=False)), SETTINGS, listings={}), "p") == []


def test_settle_interrupted_load_asks_the_engine_whether_a_load_a_restart_cut_short_landed() -> None:
    loading = adapter(placement("p", S.LOADING))
    landed = plan_observations(loading, observe(pod("p")), SETTINGS, listings={"p": Listing(Listed.LOADED)})
    assert fired(landed, "p") == ["load_succeeded"]
    lost = plan_observations(loading, observe(pod("p")), SETTINGS, listings={"p": Listing(Listed.MISSING)})
    failure = next(e for e in lost.after.placements)
    assert fired(lost, "p") == ["load_failed"] and failure.state is S.BACKOFF
    assert failure.last_error == "the operator restarted during the load"


@pytest.mark.parametrize(
    ("listing", "reason"),
    [
        (
            Listing(Listed.MISSING),
            "not listed by the engine's /v1/models (unloaded by another client, or the engine restarted)",
        ),
        (Listing(Listed.OTHER_PATH), "the engine serves another artifact under this name"),
        (Listing(Listed.UNREACHABLE, "refused"), "engine unreachable: refused"),
    ],
    ids=["missing", "other-path", "unreachable"],
)
def test_notice_missing_loses_a_loaded_adapter_its_engine_no_longer_lists(listing: Listing, reason: str) -> None:
    plan = plan_observations(adapter(placement("p", S.LOADED)), observe(pod("p")), SETTINGS, listings={"p": listing})
    assert fired(plan, "p") == ["adapter_missing"]
    assert plan.after.placements[0].last_error == reason
    listed = plan_observations(
        adapter(placement("p", S.LOADED)), observe(pod("p")), SETTINGS, listings={"p": Listing(Listed.LOADED)}
    )
    assert listed.steps == ()


def test_plan_truthfulness_retires_and_loses_pods_but_ignores_the_selector() -> None:
    state = adapter(placement("gone", S.LOADED), placement("sick", S.LOADED), placement("other", S.LOADED))
    plan = plan_truthfulness(state, observe(pod("sick", ready=False), pod("other", matches=False)), SETTINGS)
    assert (fired(plan, "gone"), fired(plan, "sick"), fired(plan, "other")) == (["pod_gone"], ["pod_lost"], [])


# --- scheduling -------------------------------------------------------------------------------------------------


def test_retry_when_due_tries_a_backoff_placement_again_once_its_time_has_come_on_a_healthy_pod() -> None:
    due = adapter(placement("p", S.BACKOFF, retry_at=NOW - timedelta(seconds=1)), phase=Phase.LOADING)
    plan = plan_convergence(due, observe(pod("p")), desired(), SETTINGS)
    assert fired(plan, "p") == ["retry_due"] and plan.loads == ("p",)
    waiting = adapter(placement("p", S.BACKOFF, retry_at=NOW + timedelta(seconds=1)), phase=Phase.LOADING)
    assert fired(plan_convergence(waiting, observe(pod("p")), desired(), SETTINGS), "p") == []
    assert fired(plan_convergence(due, observe(pod("p", ready=False)), desired(), SETTINGS), "p") == []


def test_retry_when_due_after_the_fifth_attempt_exhausts_the_pod_and_switches_to_another() -> None:
    spent = adapter(placement("p", S.BACKOFF, attempts=5, retry_at=NOW, error="refused"), phase=Phase.LOADING)
    plan = plan_convergence(spent, observe(pod("p"), pod("q")), desired(), SETTINGS)
    assert fired(plan, "p") == ["retry_due"] and plan.after.placement("p").state is S.EXHAUSTED  # type: ignore[union-attr]
    assert fired(plan, "q") == ["assign", "start_load"]
    assign = next(s for s in plan.steps if isinstance(s, Fire) and s.trigger is PlacementTrigger.ASSIGN)
    assert assign.facts.replaces == "p" and assign.facts.reason == "MaxRetriesExceeded: refused"
    assert plan.after.pod_switches == 1, "the assignment records a PodSwitched"


def test_repair_lost_reloads_a_healthy_pod_that_lost_the_adapter_while_a_replica_is_missing() -> None:
    plan = plan_convergence(adapter(placement("p", S.LOST)), observe(pod("p")), desired(), SETTINGS)
    assert fired(plan, "p") == ["reload"] and plan.loads == ("p",)
    full = observe(pod("p", capacity=2, load=2), pod("q"))
    assert fired(plan_convergence(adapter(placement("p", S.LOST)), full, desired(), SETTINGS), "p") == ["unload"]


def test_reconsider_rested_gives_a_rested_exhausted_pod_fresh_attempts_when_needed_and_lets_it_go_otherwise() -> None:
    rested = placement("p", S.EXHAUSTED, retry_at=NOW - timedelta(seconds=1))
    plan = plan_convergence(adapter(rested, phase=Phase.FAILED), observe(pod("p")), desired(), SETTINGS)
    assert fired(plan, "p") == ["reconsider", "start_load"]
    serving = adapter(rested, placement("q", S.LOADED))
    assert fired(plan_convergence(serving, observe(pod("p"), pod("q")), desired(), SETTINGS), "p") == ["unload"]


def test_reconsider_rested_does_not_wait_for_the_rest_when_a_new_spec_may_be_the_fix() -> None:
    tired = adapter(placement("p", S.EXHAUSTED, retry_at=NOW + timedelta(minutes=4)), phase=Phase.FAILED)
    assert fired(plan_convergence(tired, observe(pod("p")), desired(), SETTINGS), "p") == []
    fixed = plan_convergence(tired, observe(pod("p")), desired(), SETTINGS, reconsider_now=True)
    assert fired(fixed, "p") == ["reconsider", "start_load"]


def test_place_missing_chooses_stable_healthy_pods_with_room_by_the_policy() -> None:
    pods = observe(pod("busy", load=3), pod("idle"), pod("new", ready_for=1.0), pod("full", capacity=1, load=1))
    plan = plan_convergence(adapter(phase=Phase.PENDING), pods, desired(replicas=1), SETTINGS)
    assert [s.facts.pod for s in plan.steps if isinstance(s, Fire) and s.trigger is PlacementTrigger.ASSIGN] == ["idle"]
    assert plan.desired == 1 and plan.blocked is None


@pytest.mark.parametrize(
    ("pods", "reason"),
    [
        ((pod("full", capacity=1, load=1),), "InsufficientCapacity"),
        ((pod("new", ready_for=1.0),), "WaitingForStablePods"),
        ((pod("other", matches=False),), "NoCandidatePods"),
    ],
    ids=["full", "unstable", "none"],
)
def test_place_missing_says_why_nothing_could_be_placed(pods: tuple[object, ...], reason: str) -> None:
    plan = plan_convergence(adapter(phase=Phase.PENDING), observe(*pods), desired(), SETTINGS)  # type: ignore[arg-type]
    assert plan.blocked is not None and plan.blocked.reason == reason
    assert plan.after.phase is Phase.PENDING and plan.after.phase_reason == reason


def test_place_missing_with_replicas_omitted_wants_every_schedulable_pod() -> None:
    plan = plan_convergence(
        adapter(phase=Phase.PENDING, replicas=None), observe(pod("a"), pod("b")), desired(replicas=None), SETTINGS
    )
    assert plan.desired == 2 and sorted(plan.loads) == ["a", "b"]


def test_trim_surplus_lets_go_of_what_serves_least_and_newest_first() -> None:
    state = adapter(
        placement("old", S.LOADED, since=NOW - timedelta(hours=2)),
        placement("young", S.LOADED, since=NOW - timedelta(minutes=1)),
        placement("fresh", S.ASSIGNED),
    )
    plan = plan_convergence(state, observe(pod("old"), pod("young"), pod("fresh")), desired(replicas=1), SETTINGS)
    assert [fired(plan, p) for p in ("old", "young", "fresh")] == [[], ["unload"], ["unload"]]


def test_release_lost_gives_back_a_lost_placement_whose_pod_is_back_but_not_needed() -> None:
    state = adapter(placement("p", S.LOST), placement("q", S.LOADED))
    assert fired(plan_convergence(state, observe(pod("p"), pod("q")), desired(replicas=1), SETTINGS), "p") == ["unload"]


def test_start_loads_starts_every_assigned_placement_on_a_healthy_pod() -> None:
    plan = plan_convergence(
        adapter(placement("p", S.ASSIGNED), phase=Phase.SCHEDULED), observe(pod("p")), desired(), SETTINGS
    )
    assert fired(plan, "p") == ["start_load"] and plan.loads == ("p",)
    assert fired(plan, None) == ["load_started"], "and the phase follows: Scheduled -> Loading"


def test_reload_stale_reloads_a_pod_that_holds_an_older_artifact() -> None:
    plan = plan_convergence(adapter(placement("p", S.LOADED)), observe(pod("p")), desired(artifact=NEWER), SETTINGS)
    assert fired(plan, "p") == ["reload"] and plan.after.placements[0].artifact_url == NEWER


def test_another_round_only_when_a_round_exhausted_a_pod_and_an_untried_one_is_left() -> None:
    before = adapter(placement("p", S.LOADING))
    after = adapter(placement("p", S.EXHAUSTED))
    assert another_round(before, after, observe(pod("p"), pod("q")), SETTINGS)
    assert not another_round(before, after, observe(pod("p")), SETTINGS)
    assert not another_round(before, adapter(placement("p", S.BACKOFF)), observe(pod("p"), pod("q")), SETTINGS)


# --- deletion -----------------------------------------------------------------------------------------------------


def test_retire_everything_unloads_every_placement_by_the_deadline_and_lets_deleted_pods_go() -> None:
    deadline = NOW + timedelta(minutes=1)
    state = adapter(placement("gone", S.LOADED), placement("here", S.BACKOFF), placement("busy", S.UNLOADING))
    plan = plan_retirement(state, observe(pod("here"), pod("busy")), SETTINGS, deadline=deadline)
    assert [fired(plan, p) for p in ("gone", "here", "busy")] == [["pod_gone"], ["unload"], []]
    assert plan.after.placement("here").unload_deadline == deadline  # type: ignore[union-attr]


def test_finalize_ends_the_stream_once_no_placement_is_left() -> None:
    assert [type(s.event) for s in plan_finalization(adapter(), now=NOW).steps if isinstance(s, Record)] == [Finalized]
    assert plan_finalization(adapter(placement("p", S.UNLOADING)), now=NOW).steps == ()
    assert plan_finalization(adapter(placement("p", S.UNLOADING)), now=NOW, placements_left=True).after.finalized


# --- engine calls and their outcomes ----------------------------------------------------------------------------


def test_load_outcome_records_a_success_and_backs_off_a_retriable_failure() -> None:
    state = adapter(placement("ok", S.LOADING), placement("bad", S.LOADING))
    outcomes = {"ok": CallOutcome(duration_ms=12.3456), "bad": CallOutcome(error="refused", retriable=True)}
    plan = plan_load_outcomes(state, observe(), SETTINGS, outcomes)
    assert (fired(plan, "ok"), fired(plan, "bad")) == (["load_succeeded"], ["load_failed"])
    failure = next(s for s in plan.after.placements if s.pod == "bad")
    assert failure.state is S.BACKOFF and failure.next_retry_at == NOW + timedelta(seconds=5)


def test_unload_outcome_for_each_due_pod_gone_unaddressable_done_or_failed() -> None:
    state = adapter(*(placement(p, S.UNLOADING) for p in ("gone", "no-ip", "done", "failed")))
    outcomes = {"done": CallOutcome(), "failed": CallOutcome(error="500")}
    pods = observe(pod("no-ip"), pod("done"), pod("failed"))
    plan = plan_unload_outcomes(state, pods, SETTINGS, due=["gone", "no-ip", "done", "failed"], outcomes=outcomes)
    assert [fired(plan, p) for p in ("gone", "no-ip", "done", "failed")] == [
        ["pod_gone"],
        ["unload_failed"],
        ["unload_succeeded"],
        ["unload_failed"],
    ]


def test_unloads_due_are_the_unloading_placements_not_waiting_for_their_retry() -> None:
    state = adapter(
        placement("now", S.UNLOADING),
        placement("later", S.UNLOADING, retry_at=NOW + timedelta(seconds=5)),
        placement("loaded", S.LOADED),
    )
    assert unloads_due(state, now=NOW) == ("now",)


def test_bind_endpoints_records_the_addresses_when_they_changed() -> None:
    plan = plan_endpoints(adapter(), service="qwen-code-lora", addresses=["10.0.0.3", "10.0.0.2"], now=NOW)
    assert [s.event for s in plan.steps if isinstance(s, Record)] == [
        ServiceBound(service="qwen-code-lora", endpoints=("10.0.0.2", "10.0.0.3"))
    ]
    assert plan_endpoints(plan.after, service="qwen-code-lora", addresses=["10.0.0.2", "10.0.0.3"], now=NOW).steps == ()


def test_listings_due_are_interrupted_loads_and_instances_not_confirmed_within_the_interval() -> None:
    state = adapter(placement("loading", S.LOADING), placement("stale", S.LOADED), placement("fresh", S.LOADED))
    confirmed = {"stale": NOW - timedelta(seconds=31), "fresh": NOW - timedelta(seconds=29)}
    pods = observe(pod("loading"), pod("stale"), pod("fresh"))
    assert listings_due(state, pods, SETTINGS, verified_at=confirmed) == ("loading", "stale")


def test_next_look_is_the_earliest_deadline() -> None:
    state = adapter(placement("p", S.BACKOFF, retry_at=NOW + timedelta(seconds=7)), placement("q", S.LOADED))
    assert next_look(state, observe(), SETTINGS, service_ready=True) == timedelta(seconds=7)
    assert next_look(adapter(placement("q", S.LOADED)), observe(), SETTINGS, service_ready=False) == timedelta(
        seconds=2
    )
    settling = observe(pod("new", ready_for=1.5))
    assert next_look(adapter(phase=Phase.PENDING), settling, SETTINGS, service_ready=True) == timedelta(seconds=3.5)
    assert next_look(adapter(phase=Phase.PENDING), observe(), SETTINGS, service_ready=True) is None


# --- the phase ----------------------------------------------------------------------------------------------------


def test_walk_phase_follows_the_placements_one_documented_edge_at_a_time() -> None:
    loaded = adapter(placement("p", S.LOADED), phase=Phase.PENDING)
    plan = plan_phase(loaded, observe(pod("p")), SETTINGS, service_ready=True)
    assert fired(plan, None) == ["pods_selected", "load_started", "load_verified", "service_bound"]
    assert plan.after.phase_message == "ModelAdapter default/qwen-code-lora is ready"
    waiting = plan_phase(loaded, observe(pod("p")), SETTINGS, service_ready=False)
    assert waiting.after.phase is Phase.BOUND


def test_walk_phase_fails_an_adapter_whose_pods_are_all_exhausted_unless_it_only_waits() -> None:
    spent = adapter(placement("p", S.EXHAUSTED, error="rank 64 is greater than max_lora_rank 16"), phase=Phase.LOADING)
    plan = plan_phase(spent, observe(), SETTINGS)
    assert fired(plan, None) == ["loading_failed"]
    assert plan.after.phase_message == "Loading failed on all pods: pod p: rank 64 is greater than max_lora_rank 16"
    waiting = plan_phase(
        spent, observe(), SETTINGS, blocked=Blocked("InsufficientCapacity", "every candidate pod is full")
    )
    assert fired(waiting, None) == ["pods_unavailable"]


def test_walk_phase_starts_a_failed_adapter_over_for_the_reason_it_can_give() -> None:
    failed = adapter(placement("q", S.ASSIGNED), phase=Phase.FAILED)
    plan = plan_phase(failed, observe(pod("q")), SETTINGS, restart=Restart(failed_for="InvalidSpec", fresh_spec=True))
    assert fired(plan, None) == ["spec_changed", "pods_selected"]
    moved = plan_phase(failed, observe(pod("q")), SETTINGS, restart=Restart(tried=frozenset()))
    assert fired(moved, None)[0] == "pods_changed"
    rested = plan_phase(failed, observe(pod("q")), SETTINGS, restart=Restart(tried=frozenset({"q"})))
    assert fired(rested, None)[0] == "retry_due"


# --- the declarations -----------------------------------------------------------------------------------------------


def test_a_rule_cannot_fire_a_trigger_it_does_not_declare() -> None:
    planner = Planner(adapter(placement("p", S.LOADED)), observe(pod("p")), SETTINGS)
    with pytest.raises(UndeclaredTrigger, match="retire_gone fired 'unload'"):
        planner.unload(RETIRE_GONE, "p")


def test_every_rule_is_declared_once_and_documented() -> None:
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))
    assert all(rule.does and (rule.fires or rule.records) for rule in RULES)


def test_a_retriable_failure_waits_as_the_backoff_says_for_its_attempt() -> None:
    third = adapter(placement("p", S.LOADING, attempts=3))
    plan = plan_load_outcomes(third, observe(), SETTINGS, {"p": CallOutcome(error="refused", retriable=True)})
    assert plan.after.placements[0].next_retry_at == NOW + timedelta(seconds=20), "the third failure waits 20 s"
