"""`-o wide` and `-o name` for the audit commands that list adapters or events, as kubectl users expect them.

Which command takes which (`EXTRA_OUTPUTS`):

* `stuck`: `wide` adds each adapter's UID; `name` prints `modeladapter.model.aibrix.ai/NAME`, one line per
  stuck adapter (`kubectl get -o name`'s shape, without the namespace, as kubectl prints it, so that with `-A`
  two namespaces' adapters of one name are two identical lines), for a pipe such
  as `modeladapter stuck -o name | xargs kubectl describe`;
* `verify`: `name` prints each adapter that drifted, once (the exit status is still 1 on drift); its table is
  a report of drifts, not a listing, and has nothing to add;
* `events`: `wide` adds the stream's UID, the event's version in its stream and its position in the log,
  before the event's text, so that `--follow`'s rows stay aligned (an event is not a Kubernetes object, so
  there is no `name`).

`history` and `replay` show one adapter and `stats` a summary: neither has rows to widen or names to list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from modeladapter.fsm.events import RecordedEvent
from modeladapter.operator.audit.drifts import Verification
from modeladapter.operator.audit.rendering import (
    EVENT_HEADERS,
    EVENT_MIN_WIDTHS,
    event_row,
    format_row,
    table,
)

RESOURCE: Final = "modeladapter.model.aibrix.ai"
"""The resource's full name, as `kubectl get modeladapters -o name` prints it."""
EXTRA_OUTPUTS: Final[dict[str, tuple[str, ...]]] = {
    "stuck": ("wide", "name"),
    "verify": ("name",),
    "events": ("wide",),
}
WIDE_EVENT_HEADERS: Final = (*EVENT_HEADERS[:-1], "UID", "VERSION", "POSITION", EVENT_HEADERS[-1])
WIDE_EVENT_MIN_WIDTHS: Final = (*EVENT_MIN_WIDTHS, 36, 7, 8)
"""A UID is 36 characters; a follow's rows cannot be measured ahead, so these keep them aligned."""


def names(adapters: Sequence[tuple[str, str]]) -> str:
    """`modeladapter.model.aibrix.ai/NAME` lines, one per (namespace, name) given, each once, in the order given.

    As `kubectl get -A -o name` prints them: team-a/x and team-b/x are two lines, both `.../x`.
    """
    return "".join(f"{RESOURCE}/{name}\n" for _, name in dict.fromkeys(adapters))


def drifted(result: Verification) -> list[tuple[str, str]]:
    """The (namespace, name) of each adapter that drifted, in the report's order."""
    return [(drift.namespace, drift.name) for drift in result.drifts]


def event_wide_row(event: RecordedEvent) -> list[str]:
    *columns, text = event_row(event)
    return [*columns, event.stream_id, str(event.version), str(event.position), text]


def events_wide(found: Sequence[RecordedEvent]) -> str:
    return table(WIDE_EVENT_HEADERS, [event_wide_row(e) for e in found], minimum=WIDE_EVENT_MIN_WIDTHS)


def events_wide_header() -> str:
    return format_row(list(WIDE_EVENT_HEADERS), WIDE_EVENT_MIN_WIDTHS) + "\n"


def event_wide_line(event: RecordedEvent) -> str:
    return format_row(event_wide_row(event), WIDE_EVENT_MIN_WIDTHS) + "\n"
