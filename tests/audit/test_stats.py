"""`modeladapter stats`: time-in-phase percentiles, and retry, pod-switch and pod-loss counts, across adapters."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import timedelta

import yaml

from modeladapter.fsm.events import PhaseChanged, RecordedEvent
from modeladapter.store import StreamInfo
from tests.audit.conftest import ProducedLog, Run, SandboxLog, document
from tests.conftest import read_log


def _stats(modeladapter: Run, url: str, *argv: str) -> dict:
    return document(modeladapter, "stats", "--database-url", url, *argv)


def _stays(everything: list[RecordedEvent], streams: list[StreamInfo]) -> tuple[dict[str, list[float]], Counter[str]]:
    """Completed stays per phase in seconds (left, or the stream finalized in it), and stays still going on."""
    finalized = {s.stream_id: s.finalized_at for s in streams}
    decisions: dict[str, list[RecordedEvent]] = {}
    for event in everything:
        if isinstance(event.payload, PhaseChanged):
            decisions.setdefault(event.stream_id, []).append(event)
    completed: dict[str, list[float]] = {}
    ongoing: Counter[str] = Counter()
    for stream_id, found in decisions.items():
        for this, following in zip(found, [*found[1:], None], strict=True):
            assert isinstance(this.payload, PhaseChanged)
            ended = following.recorded_at if following is not None else finalized[stream_id]
            phase = this.payload.to_phase.value
            if ended is None:
                ongoing[phase] += 1
            else:
                completed.setdefault(phase, []).append(round((ended - this.recorded_at).total_seconds(), 6))
    return completed, ongoing


def _nearest_rank(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def _streams(url_owner: ProducedLog | SandboxLog) -> list[StreamInfo]:
    return url_owner.store(lambda store: store.streams())


def _counts(everything: list[RecordedEvent], kind: str) -> Counter[tuple[str, str]]:
    return Counter((e.namespace, e.name) for e in everything if e.payload.type == kind)


def test_time_in_phase_has_percentiles_of_the_completed_stays_of_each_phase(
    produced_log: ProducedLog, modeladapter: Run
) -> None:
    completed, ongoing = _stays(read_log(produced_log.database_url), _streams(produced_log))
    rows = {r["phase"]: r for r in _stats(modeladapter, produced_log.database_url, "-A")["time_in_phase"]}
    assert set(rows) == set(completed) | set(ongoing)
    assert {"Pending", "Scheduled", "Loading", "Bound", "Running", "Failed", "Terminating"} <= set(rows)
    for phase, row in rows.items():
        stays = completed.get(phase, [])
        assert (row["intervals"], row["ongoing"]) == (len(stays), ongoing.get(phase, 0)), phase
        if not stays:
            assert row["p50_seconds"] is row["p90_seconds"] is row["p99_seconds"] is row["max_seconds"] is None
            continue
        assert row["p50_seconds"] <= row["p90_seconds"] <= row["p99_seconds"] <= row["max_seconds"]
        assert [row[f"p{n}_seconds"] for n in (50, 90, 99)] == [_nearest_rank(stays, n / 100) for n in (50, 90, 99)]
        assert row["max_seconds"] == max(stays)


def test_the_phases_are_listed_in_lifecycle_order(produced_log: ProducedLog, modeladapter: Run) -> None:
    phases = [r["phase"] for r in _stats(modeladapter, produced_log.database_url, "-A")["time_in_phase"]]
    assert phases == [
        p for p in ("Pending", "Scheduled", "Loading", "Bound", "Running", "Failed", "Terminating") if p in phases
    ]


def test_retries_switches_and_losses_per_adapter_match_the_log(produced_log: ProducedLog, modeladapter: Run) -> None:
    everything = read_log(produced_log.database_url)
    document_ = _stats(modeladapter, produced_log.database_url, "-A")
    counted = {
        (a["namespace"], a["name"]): (a["retries"], a["pod_switches"], a["pod_losses"]) for a in document_["adapters"]
    }
    retries, switches, losses = (_counts(everything, kind) for kind in ("LoadFailed", "PodSwitched", "PodLost"))
    assert counted == {
        key: (retries[key], switches[key], losses[key])
        for key in {(s.namespace, s.name) for s in _streams(produced_log)}
    }
    assert counted[("default", "chaos")] == (6, 2, 0)
    assert counted[("default", "mover")] == (0, 0, 1)
    assert counted[("team-b", "broken")] == (1, 0, 0)
    assert counted[("default", "reborn")] == (0, 0, 0), "both incarnations, counted under one name"
    assert document_["totals"] == {
        "retries": sum(retries.values()), "pod_switches": sum(switches.values()), "pod_losses": sum(losses.values()),
    }  # fmt: skip


def test_live_adapters_are_counted_by_current_phase(produced_log: ProducedLog, modeladapter: Run) -> None:
    live = Counter(s.phase for s in _streams(produced_log) if s.finalized_at is None)
    current = _stats(modeladapter, produced_log.database_url, "-A")["current_phases"]
    assert {c["phase"]: c["adapters"] for c in current} == dict(live) == {"Running": 4, "Pending": 1, "Failed": 1}
    assert [c["phase"] for c in current] == ["Pending", "Running", "Failed"]


def test_a_namespace_narrows_every_part(produced_log: ProducedLog, modeladapter: Run) -> None:
    team_b = _stats(modeladapter, produced_log.database_url, "-n", "team-b")
    assert team_b["namespace"] == "team-b"
    assert [(a["name"], a["retries"]) for a in team_b["adapters"]] == [("broken", 1), ("waiting", 0)]
    assert {c["phase"]: c["adapters"] for c in team_b["current_phases"]} == {"Pending": 1, "Failed": 1}
    assert {r["phase"] for r in team_b["time_in_phase"]} == {"Pending", "Scheduled", "Loading", "Failed"}
    default = _stats(modeladapter, produced_log.database_url)
    assert default["namespace"] == "default" and {a["namespace"] for a in default["adapters"]} == {"default"}
    assert _stats(modeladapter, produced_log.database_url, "-A")["namespace"] is None


def test_the_table_shows_durations_counts_and_totals(produced_log: ProducedLog, modeladapter: Run) -> None:
    result = modeladapter("stats", "-A", "--database-url", produced_log.database_url)
    assert result.code == 0 and result.err == ""
    durations, counts, current = (part.splitlines() for part in result.out.split("\n\n"))
    assert durations[0].startswith("time in phase (all namespaces;")
    assert durations[1].split() == ["PHASE", "STAYS", "P50", "P90", "P99", "MAX", "ONGOING"]
    found = _stats(modeladapter, produced_log.database_url, "-A")
    assert [line.split()[0] for line in durations[2:]] == [r["phase"] for r in found["time_in_phase"]]
    for line, row in zip(durations[2:], found["time_in_phase"], strict=True):
        cells = line.split()
        assert (cells[1], cells[-1]) == (str(row["intervals"]), str(row["ongoing"]))
        # 0.052s, 12.3s, 5m03s ... or - for a phase with no completed stay
        assert all(cell == "-" if row["intervals"] == 0 else cell[-1] == "s" for cell in cells[2:6])
    assert counts[0] == "retries and pod changes"
    assert counts[1].split() == ["ADAPTER", "RETRIES", "POD", "SWITCHES", "POD", "LOSSES"]
    rows = {line.split()[0]: line.split()[1:] for line in counts[2:]}
    assert rows["default/chaos"] == ["6", "2", "0"] and rows["(total)"] == ["7", "2", "1"]
    assert current[0] == "adapters by current phase (live adapters)"
    assert [line.split() for line in current[2:]] == [["Pending", "1"], ["Running", "4"], ["Failed", "1"]]


def test_json_and_yaml_carry_the_same_document(produced_log: ProducedLog, modeladapter: Run) -> None:
    argv = ("stats", "-A", "--database-url", produced_log.database_url)
    assert json.loads(modeladapter(*argv, "-o", "json").out) == yaml.safe_load(modeladapter(*argv, "-o", "yaml").out)


def test_sandbox_chaos_counts_its_retries_and_the_lost_pod(sandbox_log: SandboxLog, modeladapter: Run) -> None:
    found = _stats(modeladapter, sandbox_log.database_url)
    (adapter,) = found["adapters"]
    assert adapter == {
        "namespace": "default",
        "name": sandbox_log.name,
        "retries": 3,
        "pod_switches": 0,
        "pod_losses": 1,
    }
    assert found["totals"] == {"retries": 3, "pod_switches": 0, "pod_losses": 1}
    assert "(3 failed load(s) retried, 1 pod(s) lost, 0 pod switch(es))" in sandbox_log.output, "as the sandbox said"
    rows = {r["phase"]: r for r in found["time_in_phase"]}
    assert {p: (r["intervals"], r["ongoing"]) for p, r in rows.items()} == {
        "Pending": (1, 0), "Scheduled": (1, 0), "Loading": (1, 0), "Bound": (1, 0), "Running": (0, 1),
    }  # fmt: skip
    completed, _ = _stays(sandbox_log.stream(), _streams(sandbox_log))
    assert rows["Loading"]["max_seconds"] == completed["Loading"][0] < timedelta(seconds=5).total_seconds()
    assert found["current_phases"] == [{"phase": "Running", "adapters": 1}]
