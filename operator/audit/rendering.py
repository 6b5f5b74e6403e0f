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
  artifact_url}], instances, selected_pods, endpoints, load_failures, pod_switches, finalized}`;
* `verify`: `{adapters_checked, in_sync, drifts: [{namespace, name, uid, field, log, cluster, note}]}`;
* `stuck`: a list of `{namespace, name, uid, phase, since, stuck_seconds, reason, message, last_error}`;
* `stats`: `{namespace, time_in_phase: [{phase, intervals, ongoing, p50_seconds, p90_seconds, p99_seconds,
  max_seconds}], adapters: [{namespace, name, retries, pod_switches, pod_losses}], totals: {...},
  current_phases: [{phase, adapters}]}`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import yaml

from modeladapter.fsm.events import RecordedEvent
from modeladapter.fsm.phases import Phase
from modeladapter.fsm.state import AdapterState
from modeladapter.operator.audit.auditing import Drift, History, Incarnation, PhaseStay, Replay, Stats, Verification
from modeladapter.operator.audit.narration import NO_PHASE, narrate
from modeladapter.store.queries import StuckAdapter

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


def _one_line(text: str) -> str:
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
                        _one_line(payload.message),
                    ]
                )
            else:
                rows.append(Span(short_instant(entry.recorded_at), f"  {entry.payload.type}: {_one_line(narrate(entry.payload))}"))
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
        _one_line(narrate(event.payload)),
    ]


def events_table(found: Sequence[RecordedEvent]) -> str:
    return table(EVENT_HEADERS, [event_row(e) for e in found], minimum=EVENT_MIN_WIDTHS)


def event_line(event: RecordedEvent) -> str:
    """One row of `events --follow`, in the table's minimum column widths (rows cannot be aligned ahead)."""
    return format_row(event_row(event), EVENT_MIN_WIDTHS) + "\n"


# --- replay ---------------------------------------------------------------------------------------------------


def state_document(state: AdapterState) -> dict[str, Any]:
    spec = state.spec
    return {
        "uid": state.stream_id,
        "namespace": state.namespace,
        "name": state.name,
        "version": state.version,
        "position": state.position,
        "phase": state.phase.value if state.phase else None,
        "phase_since": instant(state.phase_since),
        "phase_trigger": state.phase_trigger,
        "phase_reason": state.phase_reason,
        "phase_message": state.phase_message,
        "generation": state.generation,
        "spec": spec.model_dump(mode="json", exclude={"type", "schema_version"}) if spec else None,
        "spec_rejected": state.rejection.model_dump(mode="json", exclude={"type", "schema_version"})
        if state.spec_rejected and state.rejection
        else None,
        "placements": [
            {
                "pod": p.pod,
                "state": p.state.value,
                "since": instant(p.since),
                "attempts": p.attempts,
                "next_retry_at": instant(p.next_retry_at),
                "last_error": p.last_error,
                "artifact_url": p.artifact_url,
            }
            for p in state.placements
        ],
        "instances": list(state.instances),
        "selected_pods": list(state.selected_pods),
        "endpoints": list(state.endpoints) if state.endpoints is not None else None,
        "load_failures": state.load_failures,
        "pod_switches": state.pod_switches,
        "finalized": state.finalized,
    }


def replay_document(result: Replay) -> dict[str, Any] | list[dict[str, Any]]:
    if result.steps:
        return [{"event": event_document(e), "state": state_document(s)} for e, s in result.steps]
    return {
        "namespace": result.namespace,
        "name": result.name,
        "uid": result.stream.stream_id,
        "at": instant(result.at),
        "state": state_document(result.state),
    }


def replay_table(result: Replay) -> str:
    if result.steps:
        lines = []
        before = _flatten(state_document(AdapterState()))
        for event, state in result.steps:
            after = _flatten(state_document(state))
            lines.append(f"{short_instant(event.recorded_at)}  v{event.version}  {event.payload.type}: {_one_line(narrate(event.payload))}")
            for key in after:
                if key not in ("version", "position") and before.get(key) != after[key]:
                    lines.append(f"    {key}: {_shown(before.get(key))} -> {_shown(after[key])}")
            for key in before:
                if key not in after:
                    lines.append(f"    {key}: {_shown(before[key])} -> (gone)")
            before = after
        return "\n".join(lines) + "\n"
    return _state_table(result)


def _flatten(document: Mapping[str, Any]) -> dict[str, Any]:
    """A state document as `key: value` lines; placements become `placement[<pod>].<field>`."""
    flat: dict[str, Any] = {}
    for key, value in document.items():
        if key == "placements":
            for placement in value:
                for field, item in placement.items():
                    if field != "pod":
                        flat[f"placement[{placement['pod']}].{field}"] = item
        elif key in ("spec", "spec_rejected"):
            for field, item in (value or {}).items():
                flat[f"{key}.{field}"] = item
        elif key not in ("uid", "namespace", "name"):
            flat[key] = value
    return flat


_INSTANT: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str) and _INSTANT.match(value):
        return value[:23] + "Z"  # an instant of the document: milliseconds on screen, as in every table
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return _one_line(str(value))


def _state_table(result: Replay) -> str:
    state = result.state
    document = state_document(state)
    finalized = "  (finalized: deleted)" if state.finalized else ""
    lines = [
        f"{result.namespace}/{result.name}  uid {result.stream.stream_id}  as of {short_instant(result.at)}  "
        f"(version {state.version}, position {state.position}){finalized}",
        f"phase:          {document['phase'] or NO_PHASE}"
        f" since {short_instant(state.phase_since) if state.phase_since else '-'}"
        f" ({document['phase_trigger'] or '-'}: {document['phase_reason'] or '-'})",
        f"message:        {_one_line(state.phase_message or '') or '-'}",
        f"generation:     {state.generation}"
        + (f"  {state.spec.artifact_url}, replicas {state.spec.replicas if state.spec.replicas is not None else 'all'}" if state.spec else ""),
        f"instances:      {_shown(document['instances'])}",
        f"selected pods:  {_shown(document['selected_pods'])}",
        f"endpoints:      {_shown(document['endpoints'])}",
        f"load failures:  {state.load_failures}",
        f"pod switches:   {state.pod_switches}",
    ]
    if state.spec_rejected and state.rejection:
        lines.append(f"spec rejected:  {state.rejection.field}: {state.rejection.message}")
    rows = [
        [
            p.pod,
            p.state.value,
            short_instant(p.since),
            str(p.attempts),
            short_instant(p.next_retry_at) if p.next_retry_at else "-",
            _one_line(p.last_error or "-"),
        ]
        for p in state.placements
    ]
    text = "\n".join(lines) + "\n"
    if rows:
        text += "placements:\n" + _indent(table(["POD", "STATE", "SINCE", "ATTEMPTS", "NEXT RETRY", "LAST ERROR"], rows))
    else:
        text += "placements:     none\n"
    return text


def _indent(text: str, prefix: str = "  ") -> str:
    return "".join(prefix + line + "\n" for line in text.splitlines())


# --- verify ---------------------------------------------------------------------------------------------------


def verification_document(result: Verification) -> dict[str, Any]:
    return {
        "adapters_checked": result.checked,
        "in_sync": not result.drifts,
        "drifts": [_drift_document(d) for d in result.drifts],
    }


def _drift_document(drift: Drift) -> dict[str, Any]:
    return {
        "namespace": drift.namespace,
        "name": drift.name,
        "uid": drift.uid,
        "field": drift.field,
        "log": drift.log,
        "cluster": drift.cluster,
        "note": drift.note,
    }


def verification_table(result: Verification) -> str:
    if not result.drifts:
        return f"no drift: {result.checked} adapter(s) in the cluster match the event log\n"
    rows = [
        [f"{d.namespace}/{d.name}", d.field, _compact(d.log), _compact(d.cluster), d.note]
        for d in result.drifts
    ]
    adapters = len({d.uid for d in result.drifts})
    return (
        table(["ADAPTER", "FIELD", "LOG SAYS", "CLUSTER SAYS", "NOTE"], rows)
        + f"{len(result.drifts)} drift(s) on {adapters} adapter(s); {result.checked} adapter(s) compared\n"
    )


def _compact(value: Any) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, dict) and set(value) == {"status", "reason", "message"}:
        return _one_line(f"{value['status']} {value['reason']}: {value['message']}")
    if isinstance(value, list) and all(isinstance(v, dict) and "pod" in v for v in value):
        return "[" + ", ".join(f"{v['pod']} {v.get('state')} x{v.get('attempts')}" for v in value) + "]"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return _one_line(str(value))


# --- stuck ----------------------------------------------------------------------------------------------------


def stuck_document(found: Sequence[StuckAdapter]) -> list[dict[str, Any]]:
    return [
        {
            "namespace": s.namespace,
            "name": s.name,
            "uid": s.stream_id,
            "phase": s.phase.value,
            "since": instant(s.since),
            "stuck_seconds": seconds(s.stuck_for),
            "reason": s.reason,
            "message": s.message,
            "last_error": s.last_error,
        }
        for s in found
    ]


def stuck_table(found: Sequence[StuckAdapter], *, longer_than: timedelta) -> str:
    if not found:
        return f"no adapter has been in one phase (other than Running) for longer than {human(longer_than)}\n"
    rows = [
        [
            f"{s.namespace}/{s.name}",
            s.phase.value,
            short_instant(s.since),
            human(s.stuck_for),
            s.reason,
            _one_line(s.message),
            _one_line(s.last_error or "-"),
        ]
        for s in found
    ]
    return table(["ADAPTER", "PHASE", "SINCE", "FOR", "REASON", "MESSAGE", "LAST ERROR"], rows)


# --- stats ----------------------------------------------------------------------------------------------------


def stats_document(result: Stats) -> dict[str, Any]:
    return {
        "namespace": result.namespace,
        "time_in_phase": [
            {
                "phase": phase.value,
                "intervals": summary.intervals if summary else 0,
                "ongoing": result.ongoing.get(phase, 0),
                "p50_seconds": seconds(summary.p50) if summary else None,
                "p90_seconds": seconds(summary.p90) if summary else None,
                "p99_seconds": seconds(summary.p99) if summary else None,
                "max_seconds": seconds(summary.max) if summary else None,
            }
            for phase in Phase
            for summary in [result.time_in_phase.get(phase)]
            if summary is not None or result.ongoing.get(phase)
        ],
        "adapters": [_counts_document(a) for a in result.adapters],
        "totals": {k: v for k, v in _counts_document(result.totals).items() if k not in ("namespace", "name")},
        "current_phases": [
            {"phase": phase, "adapters": count}
            for phase, count in sorted(result.current_phases.items(), key=lambda item: _phase_order(item[0]))
        ],
    }


def _phase_order(phase: str) -> int:
    names = [p.value for p in Phase]
    return names.index(phase) if phase in names else len(names)


def _counts_document(counts: Any) -> dict[str, Any]:
    return {
        "namespace": counts.namespace,
        "name": counts.name,
        "retries": counts.retries,
        "pod_switches": counts.pod_switches,
        "pod_losses": counts.pod_losses,
    }


def stats_table(result: Stats) -> str:
    document = stats_document(result)
    scope = f"namespace {result.namespace}" if result.namespace else "all namespaces"

    def number(value: float | None) -> str:
        return human(timedelta(seconds=value)) if value is not None else "-"

    phases = [
        [
            row["phase"],
            str(row["intervals"]),
            number(row["p50_seconds"]),
            number(row["p90_seconds"]),
            number(row["p99_seconds"]),
            number(row["max_seconds"]),
            str(row["ongoing"]),
        ]
        for row in document["time_in_phase"]
    ]
    totals = document["totals"]
    counts = [
        *[[f"{a['namespace']}/{a['name']}", str(a["retries"]), str(a["pod_switches"]), str(a["pod_losses"])]
          for a in document["adapters"]],
        ["(total)", str(totals["retries"]), str(totals["pod_switches"]), str(totals["pod_losses"])],
    ]
    current = [[row["phase"], str(row["adapters"])] for row in document["current_phases"]]
    return (
        f"time in phase ({scope}; completed stays, nearest-rank percentiles; ongoing stays are only counted)\n"
        + table(["PHASE", "STAYS", "P50", "P90", "P99", "MAX", "ONGOING"], phases)
        + "\nretries and pod changes\n"
        + table(["ADAPTER", "RETRIES", "POD SWITCHES", "POD LOSSES"], counts)
        + "\nadapters by current phase (live adapters)\n"
        + table(["PHASE", "ADAPTERS"], current)
    )
