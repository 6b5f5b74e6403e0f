"""`modeladapter replay NAME --at TIME`: an adapter's state as of a moment, the fold of what its log held by then."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import yaml

from modeladapter.fsm.events import LoadFailed, RecordedEvent
from modeladapter.fsm.state import fold
from modeladapter.operator.audit.rendering import short_instant
from modeladapter.operator.audit.reports import state_document
from tests.audit.conftest import ProducedLog, Run, SandboxLog, at, document, iso, one_line_error


def _stream(log: ProducedLog, name: str, *, live: bool = True) -> list[RecordedEvent]:
    async def read(store):
        streams = [s for s in await store.streams(namespace="default", name=name) if (s.finalized_at is None) == live]
        return await store.read(streams[-1].stream_id)

    return log.store(read)


def _replay(modeladapter: Run, url: str, name: str, *argv: str) -> dict:
    return document(modeladapter, "replay", name, "--database-url", url, *argv)


def _between(found: list[RecordedEvent], event: RecordedEvent) -> datetime:
    """A moment after `event` and before the next event recorded later than it."""
    later = min(e.recorded_at for e in found if e.recorded_at > event.recorded_at)
    return event.recorded_at + (later - event.recorded_at) / 2


def _prefix(found: list[RecordedEvent], moment: datetime) -> list[RecordedEvent]:
    prefix = []
    for event in found:
        if event.recorded_at > moment:
            break
        prefix.append(event)
    return prefix


def _failures(found: list[RecordedEvent], pod: str) -> list[RecordedEvent]:
    return [e for e in found if isinstance(e.payload, LoadFailed) and e.payload.pod == pod]


# --- the state at a moment ------------------------------------------------------------------------------------


def test_a_moment_between_two_events_gives_the_fold_of_the_prefix(produced_log: ProducedLog, modeladapter: Run) -> None:
    found = _stream(produced_log, "chaos")
    retriable, fatal = produced_log.chaos_pods["retriable"], produced_log.chaos_pods["fatal"]
    third = _failures(found, retriable)[2]
    moment = _between(found, third)
    replayed = _replay(modeladapter, produced_log.database_url, "chaos", "--at", iso(moment))
    prefix = _prefix(found, moment)
    assert replayed["at"] == iso(moment) and replayed["uid"] == third.stream_id
    assert replayed["state"] == state_document(fold(prefix))
    state = replayed["state"]
    assert state["version"] == prefix[-1].version < found[-1].version
    # Loading, the fatal pod given up on, the retriable one backing off after its third failure, nothing loaded.
    assert state["phase"] == "Loading" and state["instances"] == [] and state["endpoints"] is None
    placements = {p["pod"]: p for p in state["placements"]}
    assert (placements[fatal]["state"], placements[fatal]["attempts"]) == ("Exhausted", 1)
    assert (placements[retriable]["state"], placements[retriable]["attempts"]) == ("Backoff", 3)
    assert placements[retriable]["next_retry_at"] == iso(third.payload.retry_at)
    assert "503" in placements[retriable]["last_error"]
    assert (state["load_failures"], state["pod_switches"]) == (4, 1)


def test_now_is_the_default_and_gives_the_current_state(produced_log: ProducedLog, modeladapter: Run) -> None:
    found = _stream(produced_log, "chaos")
    replayed = _replay(modeladapter, produced_log.database_url, "chaos")
    assert replayed["state"] == state_document(fold(found))
    state = replayed["state"]
    assert state["phase"] == "Running" and state["instances"] == [produced_log.chaos_pods["healthy"]]
    assert state["version"] == len(found) and (state["load_failures"], state["pod_switches"]) == (6, 2)
    assert {p["pod"]: p["state"] for p in state["placements"]} == {
        produced_log.chaos_pods["retriable"]: "Exhausted",
        produced_log.chaos_pods["fatal"]: "Exhausted",
        produced_log.chaos_pods["healthy"]: "Loaded",
    }


def test_the_moment_is_inclusive_and_a_time_copied_from_a_table_includes_that_millisecond(
    produced_log: ProducedLog, modeladapter: Run
) -> None:
    found = _stream(produced_log, "chaos")
    first = _failures(found, produced_log.chaos_pods["retriable"])[0]
    exact = _replay(modeladapter, produced_log.database_url, "chaos", "--at", iso(first.recorded_at))["state"]
    assert exact["load_failures"] == 2, "the event recorded at that very instant is included"
    # The tables show milliseconds; the log holds microseconds. The millisecond shown covers the event.
    shown = short_instant(first.recorded_at)
    copied = _replay(modeladapter, produced_log.database_url, "chaos", "--at", shown)
    assert copied["state"]["version"] >= exact["version"]
    assert copied["at"].startswith(shown[:-1]) and copied["at"].endswith("999Z")
    just_before = _replay(
        modeladapter, produced_log.database_url, "chaos", "--at", iso(first.recorded_at - timedelta(microseconds=1))
    )
    assert just_before["state"]["load_failures"] == 1


def test_an_instant_with_an_offset_or_without_a_zone_is_the_same_moment(
    produced_log: ProducedLog, modeladapter: Run
) -> None:
    found = _stream(produced_log, "chaos")
    moment = _between(found, _failures(found, produced_log.chaos_pods["retriable"])[1])
    in_utc = _replay(modeladapter, produced_log.database_url, "chaos", "--at", iso(moment))
    with_offset = moment.astimezone(timezone(timedelta(hours=-5))).isoformat()
    assert _replay(modeladapter, produced_log.database_url, "chaos", "--at", with_offset) == in_utc
    naive = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")
    assert _replay(modeladapter, produced_log.database_url, "chaos", "--at", naive) == in_utc


def test_a_moment_before_the_adapter_existed_is_an_error(produced_log: ProducedLog, modeladapter: Run) -> None:
    found = _stream(produced_log, "chaos")
    before = found[0].recorded_at - timedelta(seconds=1)
    error = one_line_error(
        modeladapter("replay", "chaos", "--at", iso(before), "--database-url", produced_log.database_url)
    )
    assert "default/chaos did not exist yet" in error and iso(found[0].recorded_at) in error
    long_ago = one_line_error(
        modeladapter("replay", "chaos", "--at", "1d", "--database-url", produced_log.database_url)
    )
    assert "did not exist yet" in long_ago


# --- --step ---------------------------------------------------------------------------------------------------


def test_step_walks_the_prefix_one_event_at_a_time_with_the_state_after_each(
    produced_log: ProducedLog, modeladapter: Run
) -> None:
    found = _stream(produced_log, "chaos")
    moment = _between(found, _failures(found, produced_log.chaos_pods["retriable"])[0])
    prefix = _prefix(found, moment)
    steps = _replay(modeladapter, produced_log.database_url, "chaos", "--at", iso(moment), "--step")
    assert [s["event"]["version"] for s in steps] == [e.version for e in prefix]
    assert [s["event"]["type"] for s in steps] == [e.payload.type for e in prefix]
    for number, step in enumerate(steps, start=1):
        assert step["state"] == state_document(fold(prefix[:number]))
    whole = _replay(modeladapter, produced_log.database_url, "chaos", "--at", iso(moment))
    assert steps[-1]["state"] == whole["state"]


def test_step_as_a_table_shows_each_event_and_the_fields_it_changed(
    produced_log: ProducedLog, modeladapter: Run
) -> None:
    found = _stream(produced_log, "chaos")
    retriable = produced_log.chaos_pods["retriable"]
    moment = _between(found, _failures(found, retriable)[0])
    result = modeladapter("replay", "chaos", "--at", iso(moment), "--step", "--database-url", produced_log.database_url)
    assert result.code == 0 and result.err == ""
    lines = result.out.splitlines()
    headings = [line for line in lines if not line.startswith("    ")]
    shown = _prefix(found, moment)
    assert len(headings) == len(shown)
    for heading, event in zip(headings, shown, strict=True):
        assert heading.startswith(f"{short_instant(event.recorded_at)}  v{event.version}  {event.payload.type}: ")
    failure = next(i for i, line in enumerate(lines) if line.split()[2:3] == ["LoadFailed:"] and retriable in line)
    changes = []
    for line in lines[failure + 1 :]:
        if not line.startswith("    "):
            break
        changes.append(line.strip())
    assert "load_failures: 1 -> 2" in changes
    assert any(c.startswith(f"placement[{retriable}].last_error: - -> ") and "503" in c for c in changes)
    state_changes = [line.strip() for line in lines if line.strip().startswith(f"placement[{retriable}].state:")]
    assert state_changes[:3] == [
        f"placement[{retriable}].state: - -> Assigned",
        f"placement[{retriable}].state: Assigned -> Loading",
        f"placement[{retriable}].state: Loading -> Backoff",
    ]


# --- incarnations ---------------------------------------------------------------------------------------------


def test_a_recreated_name_replays_the_incarnation_that_existed_at_the_moment(
    produced_log: ProducedLog, modeladapter: Run
) -> None:
    async def streams(store):
        return await store.streams(namespace="default", name="reborn")

    first, second = produced_log.store(streams)
    assert first.finalized_at is not None and first.finalized_at < second.created_at
    now = _replay(modeladapter, produced_log.database_url, "reborn")
    assert now["uid"] == second.stream_id and now["state"]["phase"] == "Running" and not now["state"]["finalized"]
    # Between the deletion and the re-creation, the deleted one, finalized.
    gap = first.finalized_at + (second.created_at - first.finalized_at) / 2
    deleted = _replay(modeladapter, produced_log.database_url, "reborn", "--at", iso(gap))
    assert deleted["uid"] == first.stream_id and deleted["state"]["finalized"]
    assert deleted["state"]["phase"] == "Terminating" and deleted["state"]["instances"] == []
    # --uid picks an incarnation whatever the moment; --uid of another name is an error.
    chosen = _replay(modeladapter, produced_log.database_url, "reborn", "--uid", first.stream_id)
    assert chosen == {**deleted, "at": chosen["at"]}
    error = one_line_error(
        modeladapter("replay", "reborn", "--uid", "nope", "--database-url", produced_log.database_url)
    )
    assert "nope" in error and first.stream_id in error and second.stream_id in error


def test_the_table_shows_phase_instances_and_placements(produced_log: ProducedLog, modeladapter: Run) -> None:
    result = modeladapter("replay", "chaos", "--database-url", produced_log.database_url)
    assert result.code == 0 and result.err == ""
    heading, phase, *rest = result.out.splitlines()
    assert heading.startswith("default/chaos  uid ") and " as of " in heading
    assert phase.startswith("phase:") and "Running since" in phase and "service_bound" in phase
    assert f"instances:      [{produced_log.chaos_pods['healthy']}]" in rest
    assert "load failures:  6" in rest and "pod switches:   2" in rest
    table = rest[rest.index("placements:") + 1 :]
    assert table[0].split() == ["POD", "STATE", "SINCE", "ATTEMPTS", "NEXT", "RETRY", "SERVES", "LAST", "ERROR"]
    assert len(table) == 4


def test_json_and_yaml_carry_the_same_document(produced_log: ProducedLog, modeladapter: Run) -> None:
    as_json = _replay(modeladapter, produced_log.database_url, "mover", "--at", "now")
    moment = as_json["at"]
    as_yaml = modeladapter("replay", "mover", "--at", moment, "--database-url", produced_log.database_url, "-o", "yaml")
    assert as_yaml.code == 0 and yaml.safe_load(as_yaml.out) == as_json


# --- against a `modeladapter sandbox --chaos` log -------------------------------------------------------------


def test_sandbox_chaos_at_the_first_failed_load_the_pod_is_backing_off(
    sandbox_log: SandboxLog, modeladapter: Run
) -> None:
    found = sandbox_log.stream()
    first = next(e for e in found if isinstance(e.payload, LoadFailed))
    assert isinstance(first.payload, LoadFailed)
    # As an on-call engineer would: the time of the first LoadFailed row, as `events` shows it.
    replayed = _replay(
        modeladapter, sandbox_log.database_url, sandbox_log.name, "--at", short_instant(first.recorded_at)
    )
    placements = {p["pod"]: p for p in replayed["state"]["placements"]}
    faulty = placements[first.payload.pod]
    assert (faulty["state"], faulty["attempts"]) == ("Backoff", 1)
    assert faulty["next_retry_at"] == iso(first.payload.retry_at) and "502" in faulty["last_error"]
    assert len(placements) == 3 and replayed["state"]["load_failures"] == 1
    assert abs((at(faulty["next_retry_at"]) - first.recorded_at) - timedelta(seconds=1)) < timedelta(seconds=0.5), (
        "1 s backoff"
    )


def test_sandbox_chaos_now_serves_on_the_replacement_pod(sandbox_log: SandboxLog, modeladapter: Run) -> None:
    state = _replay(modeladapter, sandbox_log.database_url, sandbox_log.name)["state"]
    assert state["phase"] == "Running" and state["load_failures"] == 3 and len(state["instances"]) == 3
    (lost,) = [e.payload.pod for e in sandbox_log.stream() if e.payload.type == "PodLost"]
    assert lost not in state["instances"] and lost not in [p["pod"] for p in state["placements"]]
    assert all(p["state"] == "Loaded" for p in state["placements"]) and len(state["placements"]) == 3
    assert state == state_document(fold(sandbox_log.stream()))
