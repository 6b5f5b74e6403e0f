"""The audit commands' output: aligned plain-text tables, and stable JSON and YAML documents.

JSON and YAML carry the same document (YAML is the JSON document dumped as YAML, so `json.loads` of one and
`yaml.safe_load` of the other are equal). Conventions, shared by every command:

* instants are strings, ISO 8601 in UTC with microseconds and `Z`: `2026-11-26T21:04:05.123456Z`;
* durations are numbers of seconds, in fields named `..._seconds`;
* keys are snake_case; absent values are `null`; event payloads are the log's own JSON (`modeladapter.fsm.events`).

The shapes (docs/audit.md shows examples):

* `history`: `{namespace, name, now, incarnations: [{uid, created_at, finalized_at, current_phase,
  timeline: [entry ...]}]}`; an entry is `{kind: "phase", at, from_phase, to_phase, trigger, reason, message,
  duration_seconds, ongoing, version, position}` or `{kind: <event type>, at, pod, narration, version,
  position, payload}` for the retries and pod changes between the phases;
* `events`: a list of events `{position, uid, namespace, name, version, type, recorded_at, event_id,
  reconcile_id, observed_generation, narration, payload}`; with `--follow`, one such object per line (JSON)
  or per document (YAML);
* `replay`: `{namespace, name, uid, at, state}`, or with `--step` a list of `{event, state}`; a state is
  `{uid, namespace, name, version, position, phase, phase_since, phase_trigger, phase_reason, phase_message,
  generation, spec, spec_rejected, placements: [{pod, state, since, attempts, next_retry_at, last_error,
  artifact_url, serves, replacing}], rollout: {to_artifact, from_artifacts, started_at, halted_on, halted_error,
  finished_at, rolled_back} or null, instances, selected_pods, endpoints, load_failures, pod_switches, finalized}`;
* `verify`: `{adapters_checked, in_sync, drifts: [{namespace, name, uid, field, log, cluster, note}]}`;
* `stuck`: a list of `{namespace, name, uid, phase, since, stuck_seconds, reason, message, last_error}`;
* `stats`: `{namespace, time_in_phase: [{phase, intervals, ongoing, p50_seconds, p90_seconds, p99_seconds,
  max_seconds}], adapters: [{namespace, name, retries, pod_switches, pod_losses}], totals: {...},
  current_phases: [{phase, adapters}]}`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import yaml

from modeladapter.fsm.events import RecordedEvent
from modeladapter.operator.audit.auditing import History, Incarnation, PhaseStay
from modeladapter.operator.audit.narration import NO_PHASE, narrate

OutputFormat = Literal["table", "json", "yaml"]
OUTPUT_FORMATS: Final[tuple[OutputFormat, ...]] = ("table", "json", "yaml")
GAP: Final = "  "

# --- values ---------------------------------------------------------------------------------------------------


def instant(moment: datetime | None) -> str | None:
    """ISO 8601, UTC, microseconds, `Z`: one fixed width, so instants sort as strings too."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def short_instant(moment: datetime) -> str:
    """Milliseconds are enough on screen."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def seconds(duration: timedelta) -> float:
    return round(duration.total_seconds(), 6)


def human(duration: timedelta) -> str:
    """`0.052s`, `12.3s`, `5m03s`, `2h05m`, `3d04h`."""
    total = duration.total_seconds()
    if total < 10:
        return f"{total:.3f}s"
    if total < 60:
        return f"{total:.1f}s"
    whole = int(total)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def dump(document: Any, output: OutputFormat) -> str:
    """A JSON or YAML document as text, ending with a newline."""
    if output == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120)


def dump_one_line(document: Any, output: OutputFormat) -> str:
    """One document of a stream (`events --follow`): a JSON line, or a YAML document opened by `---`."""
    if output == "json":
        return json.dumps(document, ensure_ascii=False) + "\n"
    return "---\n" + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120)


# --- tables ---------------------------------------------------------------------------------------------------


class Span:
    """A table row that is one text after its first cell, left out of the column widths (history's facts)."""

    def __init__(self, first: str, text: str) -> None:
        self.first = first
        self.text = text


def table(headers: Sequence[str], rows: Iterable[Sequence[str] | Span], *, minimum: Sequence[int] = ()) -> str:
    """Columns left-aligned and separated by two spaces; the last column is not padded."""
    rows = list(rows)
    cells = [list(headers), *[list(r) for r in rows if not isinstance(r, Span)]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    widths = [max(w, m) for w, m in zip(widths, [*minimum, *[0] * len(widths)], strict=False)]
    lines = [format_row(headers, widths)]
    for row in rows:
        if isinstance(row, Span):
            lines.append(f"{row.first.ljust(widths[0])}{GAP}{row.text}".rstrip())
        else:
            lines.append(format_row(row, widths))
    return "\n".join(lines) + "\n"


def format_row(row: Sequence[str], widths: Sequence[int]) -> str:
    padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
    return GAP.join([*padded, row[-1]]).rstrip()


def one_line(text: str) -> str:
    return " ".join(text.split())


# --- history --------------------------------------------------------------------------------------------------


def history_document(result: History) -> dict[str, Any]:
    return {
        "namespace": result.namespace,
        "name": result.name,
        "now": instant(result.now),
        "incarnations": [_incarnation_document(i) for i in result.incarnations],
    }


def _current_phase(incarnation: Incarnation) -> str | None:
    stays = [e for e in incarnation.entries if isinstance(e, PhaseStay)]
    return stays[-1].payload.to_phase.value if stays else None


def _incarnation_document(incarnation: Incarnation) -> dict[str, Any]:
    stream = incarnation.stream
    return {
        "uid": stream.stream_id,
        "created_at": instant(stream.created_at),
        "finalized_at": instant(stream.finalized_at),
        "current_phase": _current_phase(incarnation),
        "timeline": [_entry_document(e) for e in incarnation.entries],
    }


def _entry_document(entry: PhaseStay | RecordedEvent) -> dict[str, Any]:
    if isinstance(entry, PhaseStay):
        payload = entry.payload
        return {
            "kind": "phase",
            "at": instant(entry.event.recorded_at),
            "from_phase": payload.from_phase.value if payload.from_phase else None,
            "to_phase": payload.to_phase.value,
            "trigger": payload.trigger,
            "reason": payload.reason,
            "message": payload.message,
            "duration_seconds": seconds(entry.duration),
            "ongoing": entry.ongoing,
            "version": entry.event.version,
            "position": entry.event.position,
        }
    return {
        "kind": entry.payload.type,
        "at": instant(entry.recorded_at),
        "pod": getattr(entry.payload, "pod", None) or getattr(entry.payload, "from_pod", None),
        "narration": narrate(entry.payload),
        "version": entry.version,
        "position": entry.position,
        "payload": entry.payload.model_dump(mode="json"),
    }


def history_table(result: History) -> str:
    count = len(result.incarnations)
    parts = []
    for index, incarnation in enumerate(result.incarnations, start=1):
        stream = incarnation.stream
        ended = f", deleted {short_instant(stream.finalized_at)}" if stream.finalized_at else ""
        phase = _current_phase(incarnation) or NO_PHASE
        state = "finalized" if stream.finalized_at else f"now {phase}"
        title = (
            f"{result.namespace}/{result.name}  incarnation {index} of {count}  uid {stream.stream_id}  "
            f"created {short_instant(stream.created_at)}{ended}  ({state})"
        )
        rows: list[Sequence[str] | Span] = []
        for entry in incarnation.entries:
            if isinstance(entry, PhaseStay):
                payload = entry.payload
                source = payload.from_phase.value if payload.from_phase else NO_PHASE
                rows.append(
                    [
                        short_instant(entry.event.recorded_at),
                        f"{source} -> {payload.to_phase.value}",
                        payload.trigger,
                        human(entry.duration) + (" (ongoing)" if entry.ongoing else ""),
                        payload.reason,
                        one_line(payload.message),
                    ]
                )
            else:
                rows.append(
                    Span(
                        short_instant(entry.recorded_at), f"  {entry.payload.type}: {one_line(narrate(entry.payload))}"
                    )
                )
        parts.append(title + "\n" + table(["TIME", "PHASE", "TRIGGER", "IN PHASE", "REASON", "MESSAGE"], rows))
    return "\n".join(parts)


# --- events ---------------------------------------------------------------------------------------------------


def event_document(event: RecordedEvent) -> dict[str, Any]:
    return {
        "position": event.position,
        "uid": event.stream_id,
        "namespace": event.namespace,
        "name": event.name,
        "version": event.version,
        "type": event.payload.type,
        "recorded_at": instant(event.recorded_at),
        "event_id": str(event.event_id),
        "reconcile_id": event.reconcile_id,
        "observed_generation": event.observed_generation,
        "narration": narrate(event.payload),
        "payload": event.payload.model_dump(mode="json"),
    }


EVENT_HEADERS: Final = ("TIME", "ADAPTER", "TYPE", "EVENT")
EVENT_MIN_WIDTHS: Final = (24, 24, 18)


def event_row(event: RecordedEvent) -> list[str]:
    return [
        short_instant(event.recorded_at),
        f"{event.namespace}/{event.name}",
        event.payload.type,
        one_line(narrate(event.payload)),
    ]


def events_table(found: Sequence[RecordedEvent]) -> str:
    return table(EVENT_HEADERS, [event_row(e) for e in found], minimum=EVENT_MIN_WIDTHS)


def event_line(event: RecordedEvent) -> str:
    """One row of `events --follow`, in the table's minimum column widths (rows cannot be aligned ahead)."""
    return format_row(event_row(event), EVENT_MIN_WIDTHS) + "\n"
