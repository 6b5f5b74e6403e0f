"""Retry timing: the seed documentation's 5, 10, 20, 40, 80 s, capped at 300 s, 5 attempts per pod."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from modeladapter.fsm.backoff import DEFAULT_BACKOFF, BackoffPolicy


def test_the_documented_sequence() -> None:
    assert [DEFAULT_BACKOFF.delay(n).total_seconds() for n in range(1, 6)] == [5, 10, 20, 40, 80]


def test_the_cap() -> None:
    assert DEFAULT_BACKOFF.delay(6) == timedelta(seconds=160)
    assert DEFAULT_BACKOFF.delay(7) == timedelta(seconds=300)
    assert DEFAULT_BACKOFF.delay(10_000) == timedelta(seconds=300)


def test_five_attempts_per_pod() -> None:
    assert [DEFAULT_BACKOFF.attempts_left(n) for n in range(7)] == [True] * 5 + [False] * 2


def test_retry_and_reconsider_times_count_from_the_failure(epoch: datetime) -> None:
    assert DEFAULT_BACKOFF.retry_at(epoch, 3) == epoch + timedelta(seconds=20)
    assert DEFAULT_BACKOFF.reconsider_at(epoch) == epoch + timedelta(seconds=300)
    assert BackoffPolicy(cooldown=timedelta(seconds=30)).reconsider_at(epoch) == epoch + timedelta(seconds=30)


def test_a_scaled_policy_keeps_the_shape() -> None:
    fast = BackoffPolicy.scaled(0.05)
    assert [fast.delay(n).total_seconds() for n in range(1, 6)] == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8])
    assert fast.cap == timedelta(seconds=3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"base": timedelta(0)}, "base must be positive", id="zero-base"),
        pytest.param({"cap": timedelta(seconds=1)}, "shorter than the base", id="cap-below-base"),
        pytest.param({"max_attempts": 0}, "at least 1", id="no-attempts"),
    ],
)
def test_a_nonsensical_policy_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BackoffPolicy(**kwargs)  # type: ignore[arg-type]


def test_attempts_are_counted_from_one() -> None:
    with pytest.raises(ValueError, match="counted from 1"):
        DEFAULT_BACKOFF.delay(0)
