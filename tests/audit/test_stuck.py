"""`modeladapter stuck --for DURATION`: live adapters in one phase (not Running) for longer than that, with the last error."""

from __future__ import annotations

import json

import yaml

from modeladapter.fsm.events import PhaseChanged
from modeladapter.store import StreamInfo
from tests.audit.conftest import ProducedLog, Run, SandboxLog, document, iso, stable


def _stuck(modeladapter: Run, url: str, *argv: str) -> list[dict]:
    return document(modeladapter, "stuck", "--database-url", url, *argv)


def _streams(log: ProducedLog) -> list[StreamInfo]:
    async def read(store):
        return await store.streams()

    return log.store(read)


def test_with_for_0s_every_live_adapter_not_running_is_listed_longest_first(
    produced_log: ProducedLog, modeladapter: Run
) -> None:
    found = _stuck(modeladapter, produced_log.database_url, "--for", "0s", "-A")
    live = [s for s in _streams(produced_log) if s.finalized_at is None]
    not_running = sorted((s for s in live if s.phase != "Running"), key=lambda s: s.phase_since)
    assert [(f["namespace"], f["name"], f["uid"]) for f in found] == [
        (s.namespace, s.name, s.stream_id) for s in not_running
    ]
    assert {(f["namespace"], f["name"]) for f in found} == {("team-b", "waiting"), ("team-b", "broken")}
    for entry, stream in zip(found, not_running, strict=True):
        assert entry["phase"] == stream.phase and entry["since"] == iso(stream.phase_since)
        assert entry["stuck_seconds"] > 0
    assert [f["since"] for f in found] == sorted(f["since"] for f in found)


def test_running_adapters_are_never_listed(produced_log: ProducedLog, modeladapter: Run) -> None:
    running = {(s.namespace, s.name) for s in _streams(produced_log) if s.phase == "Running" and s.finalized_at is None}
    assert len(running) == 4
    for argv in (("-A",), ()):
        listed = {
            (f["namespace"], f["name"]) for f in _stuck(modeladapter, produced_log.database_url, "--for", "0s", *argv)
        }
        assert not listed & running
    assert _stuck(modeladapter, produced_log.database_url, "--for", "0s") == [], "default: every adapter Running"


def test_a_waiting_adapter_shows_why_it_waits(produced_log: ProducedLog, modeladapter: Run) -> None:
    found = {f["name"]: f for f in _stuck(modeladapter, produced_log.database_url, "--for", "0s", "-n", "team-b")}
    waiting = found["waiting"]
    assert (waiting["phase"], waiting["reason"]) == ("Pending", "NoCandidatePods")
    assert waiting["message"].startswith("no healthy pod in namespace team-b matches") and waiting["last_error"] is None


def test_a_failing_adapter_shows_its_last_error(produced_log: ProducedLog, modeladapter: Run) -> None:
    found = {f["name"]: f for f in _stuck(modeladapter, produced_log.database_url, "--for", "0s", "-n", "team-b")}
    broken = found["broken"]
    assert (broken["phase"], broken["reason"]) == ("Failed", "ModelAdapterLoadingError")
    assert broken["last_error"].startswith("LoadFailed: pod broken-0: ") and "401" in broken["last_error"]
    assert "401" in broken["message"]


def test_a_duration_longer_than_any_stay_lists_nothing(produced_log: ProducedLog, modeladapter: Run) -> None:
    assert _stuck(modeladapter, produced_log.database_url, "--for", "1d", "-A") == []
    assert _stuck(modeladapter, produced_log.database_url, "-A") == [], "the default, 5m: this log is a minute old"
    table = modeladapter("stuck", "--for", "1d", "-A", "--database-url", produced_log.database_url)
    assert (
        table.code == 0 and table.out == "no adapter has been in one phase (other than Running) for longer than 1d00h\n"
    )


def test_the_table_has_one_row_per_adapter_with_reason_message_and_last_error(
    produced_log: ProducedLog, modeladapter: Run
) -> None:
    result = modeladapter("stuck", "--for", "0s", "-A", "--database-url", produced_log.database_url)
    assert result.code == 0 and result.err == ""
    header, *rows = result.out.splitlines()
    assert header.split() == ["ADAPTER", "PHASE", "SINCE", "FOR", "REASON", "MESSAGE", "LAST", "ERROR"]
    found = _stuck(modeladapter, produced_log.database_url, "--for", "0s", "-A")
    assert len(rows) == len(found) == 2
    for row, entry in zip(rows, found, strict=True):
        cells = row.split()
        assert cells[:3] == [f"team-b/{entry['name']}", entry["phase"], entry["since"][:23] + "Z"]
        assert entry["reason"] in row and entry["message"] in row
        assert row.endswith(entry["last_error"] or "-")


def test_json_and_yaml_carry_the_same_list(produced_log: ProducedLog, modeladapter: Run) -> None:
    argv = ("stuck", "--for", "0s", "-A", "--database-url", produced_log.database_url)
    as_json, as_yaml = modeladapter(*argv, "-o", "json"), modeladapter(*argv, "-o", "yaml")
    assert stable(json.loads(as_json.out)) == stable(yaml.safe_load(as_yaml.out))


def test_sandbox_chaos_heals_so_nothing_is_stuck(sandbox_log: SandboxLog, modeladapter: Run) -> None:
    assert _stuck(modeladapter, sandbox_log.database_url, "--for", "0s", "-A") == []
    result = modeladapter("stuck", "--for", "0s", "--database-url", sandbox_log.database_url)
    assert result.code == 0 and result.out.startswith("no adapter has been in one phase (other than Running)")
    # Running once and for good: the failed loads and the lost pod were each one pod of three.
    phases = [e.payload.to_phase.value for e in sandbox_log.stream() if isinstance(e.payload, PhaseChanged)]
    assert phases[-1] == "Running" and phases.count("Running") == 1
