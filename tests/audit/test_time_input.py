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


@pytest.mark.parametrize(
    "text, end",
    [
        ("0001-01-01T00:00:00+14:00", False),
        ("0001-01-01T09:59:59.999999+10:00", False),
        ("9999-12-31T23:59:59-14:00", False),
        ("9999-12-31T20:00-05:00", True),
        ("9999-12-31T23:59:59.999999-00:01", True),
    ],
)
def test_a_time_that_leaves_the_date_range_once_in_utc_is_refused_as_out_of_range(text: str, end: bool) -> None:
    with pytest.raises(TimeInputError) as refused:
        parse_time(text, now=NOW, end=end)
    assert str(refused.value) == (
        f"{text!r} is out of range: in UTC, a time must fall in 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z"
    )


@pytest.mark.parametrize(
    "text, end, expected",
    [
        ("0001-01-01T00:00:00Z", False, datetime(1, 1, 1, tzinfo=UTC)),
        ("0001-01-01T10:00:00+10:00", False, datetime(1, 1, 1, tzinfo=UTC)),
        ("9999-12-31", True, datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("9999-12-31T18:59:59.999999-05:00", True, datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    ],
)
def test_the_ends_of_the_date_range_in_utc_are_still_times(text: str, end: bool, expected: datetime) -> None:
    assert parse_time(text, now=NOW, end=end) == expected


def test_a_duration_that_reaches_back_before_the_year_1_is_refused() -> None:
    with pytest.raises(TimeInputError, match=r"^'800000d' reaches back before the year 1$"):
        parse_time("800000d", now=NOW)
