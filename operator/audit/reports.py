"""The audit commands' reports beyond the timeline: `replay` (a state as of a moment), `verify`, `stuck` and
`stats`, as documents (for JSON and YAML) and as plain-text tables. The shapes and conventions are
`modeladapter.operator.audit.rendering`'s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Final

from modeladapter.fsm.phases import Phase, PlacementState
from modeladapter.fsm.state import AdapterState, Rollout
from modeladapter.operator.audit.auditing import Replay, Stats
from modeladapter.operator.audit.drifts import Drift, Verification
from modeladapter.operator.audit.narration import NO_PHASE, narrate
from modeladapter.operator.audit.rendering import (
    event_document,
    human,
    instant,
    one_line,
    seconds,
    short_instant,
    table,
)
from modeladapter.store.queries import StuckAdapter

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
                "serves": p.artifact_url if p.state is PlacementState.LOADED else None,
                "replacing": p.replacing,
            }
            for p in state.placements
        ],
        "rollout": _rollout_document(state.rollout),
        "instances": list(state.instances),
        "selected_pods": list(state.selected_pods),
        "endpoints": list(state.endpoints) if state.endpoints is not None else None,
        "load_failures": state.load_failures,
        "pod_switches": state.pod_switches,
        "finalized": state.finalized,
    }


def _rollout_document(rollout: Rollout | None) -> dict[str, Any] | None:
    if rollout is None:
        return None
    return {
        "to_artifact": rollout.to_artifact,
        "from_artifacts": list(rollout.from_artifacts),
        "started_at": instant(rollout.started_at),
        "halted_on": rollout.halted_on,
        "halted_error": rollout.halted_error,
        "finished_at": instant(rollout.finished_at),
        "rolled_back": rollout.rolled_back,
    }


def _rollout_line(rollout: Rollout | None) -> str:
    if rollout is None:
        return "none"
    where = f"to {rollout.to_artifact} from {', '.join(rollout.from_artifacts)}, started {short_instant(rollout.started_at)}"
    if rollout.finished_at is not None:
        how = "rolled back" if rollout.rolled_back else "finished"
        return f"{where}; {how} {short_instant(rollout.finished_at)}"
    if rollout.halted_on is not None:
        return f"{where}; halted on pod {rollout.halted_on}: {one_line(rollout.halted_error or '-')}"
    return f"{where}; in progress"


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
            lines.append(
                f"{short_instant(event.recorded_at)}  v{event.version}  {event.payload.type}: {one_line(narrate(event.payload))}"
            )
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
    return one_line(str(value))


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
        f"message:        {one_line(state.phase_message or '') or '-'}",
        f"generation:     {state.generation}"
        + (
            f"  {state.spec.artifact_url}, replicas {state.spec.replicas if state.spec.replicas is not None else 'all'}"
            if state.spec
            else ""
        ),
        f"instances:      {_shown(document['instances'])}",
        f"selected pods:  {_shown(document['selected_pods'])}",
        f"endpoints:      {_shown(document['endpoints'])}",
        f"load failures:  {state.load_failures}",
        f"pod switches:   {state.pod_switches}",
        f"rollout:        {_rollout_line(state.rollout)}",
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
            p.artifact_url if p.state is PlacementState.LOADED and p.artifact_url else "-",
            one_line(p.last_error or "-"),
        ]
        for p in state.placements
    ]
    text = "\n".join(lines) + "\n"
    if rows:
        text += "placements:\n" + _indent(
            table(["POD", "STATE", "SINCE", "ATTEMPTS", "NEXT RETRY", "SERVES", "LAST ERROR"], rows)
        )
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
    rows = [[f"{d.namespace}/{d.name}", d.field, _compact(d.log), _compact(d.cluster), d.note] for d in result.drifts]
    adapters = len({d.uid for d in result.drifts})
    return (
        table(["ADAPTER", "FIELD", "LOG SAYS", "CLUSTER SAYS", "NOTE"], rows)
        + f"{len(result.drifts)} drift(s) on {adapters} adapter(s); {result.checked} adapter(s) compared\n"
    )


def _compact(value: Any) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, dict) and set(value) == {"status", "reason", "message"}:
        return one_line(f"{value['status']} {value['reason']}: {value['message']}")
    if isinstance(value, list) and all(isinstance(v, dict) and "pod" in v for v in value):
        return "[" + ", ".join(f"{v['pod']} {v.get('state')} x{v.get('attempts')}" for v in value) + "]"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return one_line(str(value))


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


def stuck_table(found: Sequence[StuckAdapter], *, longer_than: timedelta, wide: bool = False) -> str:
    """The stuck adapters, one row each; `wide` (`-o wide`) adds each adapter's uid."""
    if not found:
        return f"no adapter has been in one phase (other than Running) for longer than {human(longer_than)}\n"
    rows = [
        [
            f"{s.namespace}/{s.name}",
            s.phase.value,
            short_instant(s.since),
            human(s.stuck_for),
            s.reason,
            one_line(s.message),
            one_line(s.last_error or "-"),
            *([s.stream_id] if wide else []),
        ]
        for s in found
    ]
    headers = ["ADAPTER", "PHASE", "SINCE", "FOR", "REASON", "MESSAGE", "LAST ERROR", *(["UID"] if wide else [])]
    return table(headers, rows)


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
        *[
            [f"{a['namespace']}/{a['name']}", str(a["retries"]), str(a["pod_switches"]), str(a["pod_losses"])]
            for a in document["adapters"]
        ],
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
