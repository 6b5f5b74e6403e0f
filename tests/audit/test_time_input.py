"""Times and durations typed on the audit commands' command line (`--at`, `--since`, `--until`, `--for`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modeladapter.operator.cli.timeinput import TimeInputError, parse_duration, parse_time

NOW = datetime(2026, 11, 26, 21, 4, 5, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-11-26T21:04:05Z", datetime(2026, 11, 26, 21, 4, 5, tzinfo=UTC)),
        ("2026-11-26t21:04:05z", datetime(2026, 11, 26, 21, 4, 5, tzinfo=UTC)),
        ("2026-11-26T22:04:05+01:00", datetime(2026, 11, 26, 21, 4, 5, tzinfo=UTC)),
        ("2026-11-26 21:04:05.250", datetime(2026, 11, 26, 21, 4, 5, 250000, tzinfo=UTC)),
        ("2026-11-26", datetime(2026, 11, 26, tzinfo=UTC)),
        ("now", NOW),
        (" NOW ", NOW),
        ("90s", NOW - timedelta(seconds=90)),
        ("5m", NOW - timedelta(minutes=5)),
        ("2h", NOW - timedelta(hours=2)),
        ("1d", NOW - timedelta(days=1)),
        ("500ms", NOW - timedelta(milliseconds=500)),
        ("30", NOW - timedelta(seconds=30)),
    ],
)
def test_a_time_is_an_iso_instant_a_duration_ago_or_now_always_in_utc(text: str, expected: datetime) -> None:
    parsed = parse_time(text, now=NOW)
    assert parsed == expected and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text, end",
    [
        ("2026-11-26T21:04:05.123Z", datetime(2026, 11, 26, 21, 4, 5, 123999, tzinfo=UTC)),
        ("2026-11-26T21:04:05Z", datetime(2026, 11, 26, 21, 4, 5, 999999, tzinfo=UTC)),
        ("2026-11-26T21:04", datetime(2026, 11, 26, 21, 4, 59, 999999, tzinfo=UTC)),
        ("2026-11-26", datetime(2026, 11, 26, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2026-11-26T22:04:05.1+01:00", datetime(2026, 11, 26, 21, 4, 5, 199999, tzinfo=UTC)),
        ("2026-11-26T21:04:05.123456Z", datetime(2026, 11, 26, 21, 4, 5, 123456, tzinfo=UTC)),
        ("5m", NOW - timedelta(minutes=5)),
        ("now", NOW),
    ],
)
def test_a_time_that_ends_a_window_covers_all_of_its_last_digit(text: str, end: datetime) -> None:
    # The tables show milliseconds; a time copied from them must include the events shown at it.
    assert parse_time(text, now=NOW, end=True) == end


@pytest.mark.parametrize(
    "text", ["yesterday", "", "5 minutes ago", "-5m", "2026-13-01", "nan", "inf", "1e400s", "99999999999d"]
)
def test_an_unreadable_time_says_what_is_accepted(text: str) -> None:
    with pytest.raises(
        TimeInputError, match=r"cannot read .* as a time; use e\.g\. 2026-11-26T21:04:05Z, .* 5m, .* now"
    ):
        parse_time(text, now=NOW)


@pytest.mark.parametrize(
    "text, seconds", [("90s", 90), ("5m", 300), ("2h", 7200), ("1d", 86400), ("0s", 0), ("1.5", 1.5)]
)
def test_a_duration_is_a_number_with_a_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["forever", "-5m", "", "2026-11-26T21:04:05Z", "99999999999d"])
def test_an_unreadable_duration_says_what_is_accepted(text: str) -> None:
    with pytest.raises(TimeInputError, match=r"cannot read .* as a duration; use e\.g\. 30s, 5m, 2h or 1d"):
        parse_duration(text)
