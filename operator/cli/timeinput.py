"""Times and durations typed on the command line (`--at`, `--since`, `--until`, `--for`).

A time is one of:

* RFC 3339 / ISO 8601: `2026-11-26T21:04:05Z`, `2026-11-26T22:04:05+01:00`, `2026-11-26 21:04:05.250`,
  `2026-11-26`; a time without an offset is UTC (the log records UTC, and a server's local zone is rarely
  what an auditor means);
* a duration, meaning that long before now: `90s`, `5m`, `2h`, `1d` (`modeladapter.operator.controller.settings`'
  duration syntax, shared with the operator's flags: `ms`, `s`, `m`, `h`, `d`, or plain seconds);
* `now`.

A value that is none of these raises `TimeInputError`, whose message shows what is accepted; the CLI prefixes
the flag and exits with status 2. So does a time that leaves Python's range (years 1 to 9999) once converted
to UTC, such as `0001-01-01T00:00:00+14:00`, and a duration that reaches back before the year 1.

An ISO time names a span as long as its last digit: `21:04:05.123Z` is that whole millisecond, `21:04:05Z` that
second, `2026-11-26` that day. Where a time ends a window (`--until`, `replay --at`), `parse_time(...,
end=True)` takes the end of that span, so that a time copied from the tables (which show milliseconds, while
the log records microseconds) includes the events shown at that time instead of stopping just before them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

from modeladapter.operator.controller.settings import parse_seconds

TIME_EXAMPLES: Final = "2026-11-26T21:04:05Z, 2026-11-26T22:04:05+01:00, 90s, 5m, 2h, 1d or now"
TIME_HELP: Final = (
    "RFC 3339 / ISO 8601 (2026-11-26T21:04:05Z, with an offset, or without one = UTC), "
    "a duration meaning that long ago (90s, 5m, 2h, 1d), or now"
)
DURATION_EXAMPLES: Final = "30s, 5m, 2h or 1d"
TIME_RANGE: Final = "0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z"


class TimeInputError(ValueError):
    """A time or duration the CLI cannot read."""


def parse_duration(text: str) -> timedelta:
    """`90s`, `5m`, `2h`, `1d`, `500ms` or plain seconds, as a timedelta."""
    try:
        return timedelta(seconds=parse_seconds(text))
    except (ValueError, OverflowError):
        raise TimeInputError(f"cannot read {text!r} as a duration; use e.g. {DURATION_EXAMPLES}") from None


def parse_time(text: str, *, now: datetime, end: bool = False) -> datetime:
    """An aware UTC instant: an ISO 8601 time (naive = UTC), `now`, or a duration before `now`.

    With `end`, an ISO time is the last microsecond of the span its last digit names (see the module's doc).
    """
    stripped = text.strip()
    if stripped.lower() == "now":
        return now
    try:
        moment = datetime.fromisoformat(stripped.replace("z", "Z"))
    except ValueError:
        pass
    else:
        try:
            if end:
                moment += _span(stripped) - _MICROSECOND
            return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00:00+14:00 is in year 0 in UTC, 9999-12-31T23:59:59-14:00 in 10000
            raise TimeInputError(f"{text!r} is out of range: in UTC, a time must fall in {TIME_RANGE}") from None
    try:
        ago = timedelta(seconds=parse_seconds(stripped))
    except (ValueError, OverflowError):
        raise TimeInputError(f"cannot read {text!r} as a time; use e.g. {TIME_EXAMPLES}") from None
    try:
        return now - ago
    except OverflowError:
        raise TimeInputError(f"{text!r} reaches back before the year 1") from None


_MICROSECOND: Final = timedelta(microseconds=1)
_EXTENDED: Final = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ](\d{2})(:\d{2})?(:\d{2})?(?:[.,](\d+))?)?(?:[zZ]|[+-].*)?$")


def _span(text: str) -> timedelta:
    """How long the span named by an ISO time is: a day, an hour, ... down to its last fractional digit."""
    found = _EXTENDED.match(text)
    if found is None:  # a form we do not take apart (basic format, week dates): the instant itself
        return _MICROSECOND
    hours, minutes, seconds, fraction = found.groups()
    if hours is None:
        return timedelta(days=1)
    if minutes is None:
        return timedelta(hours=1)
    if seconds is None:
        return timedelta(minutes=1)
    if fraction is None:
        return timedelta(seconds=1)
    return max(timedelta(seconds=10 ** -len(fraction)), _MICROSECOND)
