"""Condition bookkeeping: transition times move only on a flip, and an unchanged verdict is byte-identical."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from modeladapter.operator.api.conditions import Condition, format_time, set_conditions

T0 = datetime(2025, 2, 16, 19, 14, 50, 123456, tzinfo=UTC)


def test_a_new_condition_is_stamped_with_the_time_and_generation() -> None:
    (condition,) = set_conditions(
        [],
        [Condition("Initialized", "Unknown", "ModelAdapterPending", "Starting reconciliation")],
        now=T0,
        observed_generation=1,
    )
    assert condition == {
        "type": "Initialized",
        "status": "Unknown",
        "reason": "ModelAdapterPending",
        "message": "Starting reconciliation",
        "lastTransitionTime": "2025-02-16T19:14:50Z",
        "observedGeneration": 1,
    }


def test_the_transition_time_stays_while_the_status_stays() -> None:
    first = set_conditions(
        [], [Condition("Ready", "False", "ModelAdapterLoadingError", "pod a: timeout")], now=T0, observed_generation=1
    )
    later = T0 + timedelta(minutes=3)
    again = set_conditions(
        first,
        [Condition("Ready", "False", "ModelAdapterLoadingError", "pod b: refused")],
        now=later,
        observed_generation=2,
    )
    assert again[0]["lastTransitionTime"] == "2025-02-16T19:14:50Z"
    assert (again[0]["message"], again[0]["observedGeneration"]) == ("pod b: refused", 2)
    flipped = set_conditions(
        again, [Condition("Ready", "True", "ModelAdapterAvailable", "ready")], now=later, observed_generation=2
    )
    assert flipped[0]["lastTransitionTime"] == "2025-02-16T19:17:50Z"


def test_asserting_the_same_verdict_twice_changes_nothing() -> None:
    wanted = [
        Condition("Scheduled", "True", "Scheduled", "selected 1 pods"),
        Condition("Initialized", "Unknown", "ModelAdapterPending", "Starting reconciliation"),
    ]
    once = set_conditions([], wanted, now=T0, observed_generation=1)
    twice = set_conditions(once, wanted, now=T0 + timedelta(hours=1), observed_generation=1)
    assert once == twice


def test_conditions_keep_the_seed_documentations_order_and_unrelated_ones_survive() -> None:
    current = [
        {
            "type": "Custom",
            "status": "True",
            "reason": "Mine",
            "message": "",
            "lastTransitionTime": "2025-01-01T00:00:00Z",
        }
    ]
    wanted = [
        Condition("Ready", "True", "ModelAdapterAvailable", "r"),
        Condition("Initialized", "Unknown", "ModelAdapterPending", "i"),
        Condition("Scheduled", "True", "Scheduled", "s"),
    ]
    assert [c["type"] for c in set_conditions(current, wanted, now=T0, observed_generation=1)] == [
        "Initialized",
        "Scheduled",
        "Ready",
        "Custom",
    ]


def test_messages_are_cut_to_the_api_limit() -> None:
    (condition,) = set_conditions(
        [], [Condition("Ready", "False", "LoadFailed", "x" * 40000)], now=T0, observed_generation=1
    )
    assert len(condition["message"]) == 32768


@pytest.mark.parametrize("reason", ["", "not camel", "9Lives", "Trailing-"])
def test_a_reason_must_be_camel_case(reason: str) -> None:
    with pytest.raises(ValueError, match="CamelCase"):
        Condition("Ready", "False", reason, "m")


def test_times_are_whole_seconds_in_utc_with_z() -> None:
    assert (
        format_time(datetime(2026, 1, 1, 1, 2, 3, 999999, tzinfo=timezone(timedelta(hours=2))))
        == "2025-12-31T23:02:03Z"
    )
    with pytest.raises(ValueError):
        format_time(datetime(2026, 1, 1))
