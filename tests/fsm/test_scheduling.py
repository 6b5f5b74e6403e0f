"""The placement policies of `spec.schedulerName`, with per-pod capacity."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modeladapter.fsm.scheduling import Candidate, SchedulingPolicy, UnknownPolicy, choose_pods, parse_policy

LEAST, BIN_PACK, RANDOM = SchedulingPolicy.LEAST_ADAPTERS, SchedulingPolicy.BIN_PACK, SchedulingPolicy.RANDOM


@pytest.mark.parametrize(
    ("name", "policy"),
    [
        (None, LEAST),
        ("", LEAST),
        ("default", LEAST),
        ("least-adapters", LEAST),
        ("leastAdapters", LEAST),
        ("bin-pack", BIN_PACK),
        ("binPack", BIN_PACK),
        ("random", RANDOM),
    ],
)
def test_policy_names_and_aibrix_aliases(name: str | None, policy: SchedulingPolicy) -> None:
    assert parse_policy(name) is policy


def test_an_unknown_policy_names_the_supported_ones() -> None:
    with pytest.raises(UnknownPolicy, match="unknown scheduler 'leastLatency'; supported: .*least-adapters"):
        parse_policy("leastLatency")


def test_least_adapters_picks_the_emptiest_pods() -> None:
    pods = [Candidate("a", 3), Candidate("b", 0), Candidate("c", 1), Candidate("d", 5)]
    assert choose_pods(LEAST, pods, adapter="x", count=2).pods == ("b", "c")


def test_bin_pack_picks_the_fullest_pod_with_room() -> None:
    pods = [Candidate("a", 3, capacity=4), Candidate("b", 0, capacity=4), Candidate("c", 4, capacity=4)]
    choice = choose_pods(BIN_PACK, pods, adapter="x", count=1)
    assert choice.pods == ("a",)
    assert choice.full == ("c",)


def test_bin_pack_prefers_bounded_pods_then_the_busiest_unbounded_one() -> None:
    pods = [Candidate("free", 7), Candidate("busy", 9), Candidate("small", 1, capacity=2)]
    assert choose_pods(BIN_PACK, pods, adapter="x", count=3).pods == ("small", "busy", "free")


def test_a_full_pod_is_never_chosen_and_the_shortfall_is_reported() -> None:
    pods = [Candidate("a", 4, capacity=4), Candidate("b", 1, capacity=2)]
    choice = choose_pods(LEAST, pods, adapter="x", count=2)
    assert (choice.pods, choice.short_by, choice.full) == (("b",), 1, ("a",))


def test_all_pods_when_no_count_is_given() -> None:
    pods = [Candidate("a", 0), Candidate("b", 0, capacity=0), Candidate("c", 9)]
    choice = choose_pods(LEAST, pods, adapter="x", count=None)
    assert set(choice.pods) == {"a", "c"} and choice.short_by == 0


def test_ties_are_broken_the_same_way_every_time_but_differently_per_adapter() -> None:
    pods = [Candidate(f"pod-{i}", 0) for i in range(8)]
    first = [choose_pods(LEAST, pods, adapter=f"lora-{n}", count=1).pods[0] for n in range(40)]
    again = [choose_pods(LEAST, list(reversed(pods)), adapter=f"lora-{n}", count=1).pods[0] for n in range(40)]
    assert first == again
    assert len(set(first)) > 3, "equally loaded pods should share the adapters"


def test_random_is_reproducible_from_its_seed() -> None:
    pods = [Candidate(f"pod-{i}", 0) for i in range(10)]
    picks = {choose_pods(RANDOM, pods, adapter="x", count=1, seed=str(s)).pods[0] for s in range(50)}
    assert len(picks) > 3
    assert choose_pods(RANDOM, pods, adapter="x", count=3, seed="r1") == choose_pods(
        RANDOM, pods, adapter="x", count=3, seed="r1"
    )


@given(
    st.lists(st.tuples(st.integers(0, 10), st.none() | st.integers(0, 10)), max_size=12),
    st.none() | st.integers(0, 15),
    st.sampled_from(list(SchedulingPolicy)),
)
def test_choices_are_distinct_have_room_and_fill_what_they_can(
    loads: list[tuple[int, int | None]], count: int | None, policy: SchedulingPolicy
) -> None:
    pods = [Candidate(f"pod-{i}", adapters, capacity) for i, (adapters, capacity) in enumerate(loads)]
    choice = choose_pods(policy, pods, adapter="x", count=count, seed="s")
    roomy = [p for p in pods if p.has_room]
    assert len(set(choice.pods)) == len(choice.pods)
    assert all(p.has_room for p in pods if p.pod in choice.pods)
    wanted = len(roomy) if count is None else count
    assert len(choice.pods) == min(wanted, len(roomy))
    assert choice.short_by == wanted - len(choice.pods)


def test_a_negative_count_is_a_bug() -> None:
    with pytest.raises(ValueError):
        choose_pods(LEAST, [], adapter="x", count=-1)
