"""`modeladapter history NAME`: the phase timeline, with the retries and pod changes between the phases."""

from __future__ import annotations

import json
from datetime import datetime

import yaml

from modeladapter.fsm.events import PhaseChanged, RecordedEvent
from tests.audit.conftest import ProducedLog, Run, SandboxLog, stable, timestamped_lines


def _history(modeladapter: Run, log: ProducedLog | SandboxLog, name: str, *extra: str) -> dict:
    result = modeladapter("history", name, "--database-url", log.database_url, "-o", "json", *extra)
    assert result.code == 0, result.err
    return json.loads(result.out)


def _stream(log: ProducedLog, name: str) -> list[RecordedEvent]:
    async def read(store):
        (stream,) = [s for s in await store.streams(namespace="default", name=name) if s.finalized_at is None]
        return await store.read(stream.stream_id)

    return log.store(read)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_every_phase_decision_is_a_row_in_log_order_with_the_time_spent_in_it(
    produced_log: ProducedLog, modeladapter: Run
) -> None:
    document = _history(modeladapter, produced_log, "chaos")
    (incarnation,) = document["incarnations"]
    phases = [e for e in incarnation["timeline"] if e["kind"] == "phase"]
    decisions = [e for e in _stream(produced_log, "chaos") if isinstance(e.payload, PhaseChanged)]
    assert [(p["version"], p["from_phase"], p["to_phase"], p["trigger"]) for p in phases] == [
        (e.version, e.payload.from_phase, e.payload.to_phase, e.payload.trigger) for e in decisions
    ]
    # Each phase lasts until the next decision; the current one is ongoing and measured up to now.
    for this, following in zip(phases, phases[1:], strict=False):
        assert not this["ongoing"]
        assert this["duration_seconds"] == round((_at(following["at"]) - _at(this["at"])).total_seconds(), 6)
    assert phases[-1]["ongoing"] and phases[-1]["to_phase"] == "Running" == incarnation["current_phase"]
    assert phases[-1]["duration_seconds"] >= (_at(document["now"]) - _at(phases[-1]["at"])).total_seconds() - 1e-6
    assert [p["to_phase"] for p in phases if p["to_phase"] == "Failed"] == ["Failed"], "chaos failed once, on both pods"


def test_retries_exhausted_pods_and_pod_switches_sit_between_the_phases_at_their_time(
    produced_log: ProducedLog, modeladapter: Run
) -> None:
    (incarnation,) = _history(modeladapter, produced_log, "chaos")["incarnations"]
    timeline = incarnation["timeline"]
    assert [e["position"] for e in timeline] == sorted(e["position"] for e in timeline)
    facts = [e for e in timeline if e["kind"] != "phase"]
    retriable, fatal, healthy = (produced_log.chaos_pods[k] for k in ("retriable", "fatal", "healthy"))
    failures = [
        (f["pod"], f["payload"]["attempt"], f["payload"]["retriable"]) for f in facts if f["kind"] == "LoadFailed"
    ]
    assert sorted(failures) == sorted([(retriable, n, True) for n in range(1, 6)] + [(fatal, 1, False)])
    for failure in (f for f in facts if f["kind"] == "LoadFailed"):
        assert failure["payload"]["error"] and failure["pod"] in failure["narration"]
        assert (failure["payload"]["retry_at"] is not None) == failure["payload"]["retriable"]
    exhausted = {f["pod"]: f["payload"]["cause"] for f in facts if f["kind"] == "PlacementExhausted"}
    assert exhausted == {retriable: "max-retries", fatal: "non-retriable"}
    switches = [(f["payload"]["from_pod"], f["payload"]["to_pod"]) for f in facts if f["kind"] == "PodSwitched"]
    assert len(switches) == 2 and switches[-1][1] == healthy
    # The last failure comes before Failed, and the recovery (the switch to the healthy pod, then Running) after it.
    failed_at = next(e["position"] for e in timeline if e.get("to_phase") == "Failed")
    last_failure = max(f["position"] for f in facts if f["kind"] == "LoadFailed")
    recovery = next(f["position"] for f in facts if f["kind"] == "PodSwitched" and f["payload"]["to_pod"] == healthy)
    running_again = next(
        e["position"] for e in timeline if e.get("to_phase") == "Running" and e["position"] > failed_at
    )
    assert last_failure < failed_at < recovery < running_again


def test_the_table_interleaves_facts_with_phase_rows_and_marks_the_ongoing_phase(
    produced_log: ProducedLog, modeladapter: Run
) -> None:
    result = modeladapter("history", "chaos", "--database-url", produced_log.database_url)
    assert result.code == 0 and result.err == ""
    rows = timestamped_lines(result.out)
    document = _history(modeladapter, produced_log, "chaos")
    timeline = document["incarnations"][0]["timeline"]
    assert len(rows) == len(timeline)
    for row, entry in zip(rows, timeline, strict=True):
        assert row.startswith(entry["at"][:23])
        if entry["kind"] == "phase":
            assert f"{entry['from_phase'] or '-'} -> {entry['to_phase']}" in row and entry["trigger"] in row
        else:
            assert f"{entry['kind']}: {entry['narration']}" in row
    assert rows[-1].count("(ongoing)") == 1 and sum("(ongoing)" in r for r in rows) == 1
    assert "TIME" in result.out.splitlines()[1] and "IN PHASE" in result.out.splitlines()[1]


def test_a_deleted_pod_shows_as_lost_before_the_adapter_moves(produced_log: ProducedLog, modeladapter: Run) -> None:
    (incarnation,) = _history(modeladapter, produced_log, "mover")["incarnations"]
    timeline = incarnation["timeline"]
    lost = next(i for i, e in enumerate(timeline) if e["kind"] == "PodLost")
    assert timeline[lost]["pod"] == produced_log.lost_pod and "deleted" in timeline[lost]["payload"]["reason"]
    after = [e for e in timeline[lost:] if e["kind"] == "phase"]
    assert after[0]["from_phase"] == "Running" and after[-1]["to_phase"] == "Running" and after[-1]["ongoing"]


def test_a_name_deleted_and_recreated_shows_each_incarnation_oldest_first(
    produced_log: ProducedLog, modeladapter: Run
) -> None:
    document = _history(modeladapter, produced_log, "reborn")
    first, second = document["incarnations"]
    assert first["uid"] != second["uid"] and first["created_at"] < second["created_at"]
    assert first["finalized_at"] is not None and second["finalized_at"] is None
    ended = [e for e in first["timeline"] if e["kind"] == "phase"][-1]
    assert ended["to_phase"] == "Terminating" and not ended["ongoing"]
    assert ended["duration_seconds"] == round((_at(first["finalized_at"]) - _at(ended["at"])).total_seconds(), 6)
    assert second["current_phase"] == "Running"

    table = modeladapter("history", "reborn", "--database-url", produced_log.database_url).out
    one, two = table.index("incarnation 1 of 2"), table.index("incarnation 2 of 2")
    assert one < two and first["uid"] in table[one:two] and second["uid"] in table[two:]
    assert "(finalized)" in table[one:two] and "\n\n" in table[one:two], "a blank line separates the incarnations"

    only = _history(modeladapter, produced_log, "reborn", "--uid", second["uid"])
    assert [i["uid"] for i in only["incarnations"]] == [second["uid"]]


def test_json_and_yaml_carry_the_same_document(produced_log: ProducedLog, modeladapter: Run) -> None:
    for name in ("chaos", "reborn", "waiting"):
        namespace = "team-b" if name == "waiting" else "default"
        as_json = modeladapter(
            "history", name, "-n", namespace, "--database-url", produced_log.database_url, "-o", "json"
        )
        as_yaml = modeladapter(
            "history", name, "-n", namespace, "--database-url", produced_log.database_url, "-o", "yaml"
        )
        assert as_json.code == as_yaml.code == 0
        assert stable(json.loads(as_json.out)) == stable(yaml.safe_load(as_yaml.out))


def test_an_unknown_adapter_is_one_line_naming_it_and_the_nearby_names(
    produced_log: ProducedLog, modeladapter: Run
) -> None:
    result = modeladapter("history", "chaoss", "--database-url", produced_log.database_url)
    assert result.code == 2 and result.out == ""
    assert result.err.count("\n") == 1 and "default/chaoss" in result.err and "chaos" in result.err.split("nearby")[1]
    elsewhere = modeladapter("history", "waiting", "--database-url", produced_log.database_url)
    assert elsewhere.code == 2 and "team-b" in elsewhere.err and elsewhere.err.count("\n") == 1
    wrong_uid = modeladapter("history", "reborn", "--uid", "no-such-uid", "--database-url", produced_log.database_url)
    assert wrong_uid.code == 2 and "no-such-uid" in wrong_uid.err


# --- against a `modeladapter sandbox --chaos` log -------------------------------------------------------------


def test_sandbox_chaos_history_shows_the_lifecycle_with_retries_and_the_lost_pod_inline(
    sandbox_log: SandboxLog, modeladapter: Run
) -> None:
    (incarnation,) = _history(modeladapter, sandbox_log, sandbox_log.name)["incarnations"]
    timeline = incarnation["timeline"]
    phases = [(e["from_phase"], e["to_phase"]) for e in timeline if e["kind"] == "phase"]
    assert phases == [
        (None, "Pending"),
        ("Pending", "Scheduled"),
        ("Scheduled", "Loading"),
        ("Loading", "Bound"),
        ("Bound", "Running"),
    ]
    facts = [(e["kind"], e["pod"]) for e in timeline if e["kind"] != "phase"]
    (faulty,) = {pod for kind, pod in facts if kind == "LoadFailed"}
    (lost,) = [pod for kind, pod in facts if kind == "PodLost"]
    assert [kind for kind, _ in facts] == ["LoadFailed", "LoadFailed", "LoadFailed", "PodLost"]
    assert [e["payload"]["attempt"] for e in timeline if e["kind"] == "LoadFailed"] == [1, 2, 3]
    assert f"deleting pod {lost}" in sandbox_log.output and faulty in sandbox_log.output
    # The retries run on while the adapter is already Running on the other pods: Running is ongoing throughout.
    running = timeline.index(next(e for e in timeline if e.get("to_phase") == "Running"))
    assert all(e["kind"] != "phase" for e in timeline[running + 1 :]) and timeline[running]["ongoing"]

    table = modeladapter("history", sandbox_log.name, "--database-url", sandbox_log.database_url)
    assert table.code == 0 and table.err == ""
    rows = timestamped_lines(table.out)
    assert [r.split()[1:4] for r in rows if "->" in r.split()[1:4]][-1] == ["Bound", "->", "Running"]
    assert sum("LoadFailed: load attempt" in r and faulty in r for r in rows) == 3
    assert any(r.split()[1:2] == ["PodLost:"] and f"pod {lost} lost: pod deleted" in r for r in rows)
