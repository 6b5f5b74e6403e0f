"""`modeladapter events`: the log's events in log order, filtered by adapter, type, pod and time; `--follow` tails it."""

from __future__ import annotations

import asyncio
import json
import queue
import signal
import subprocess
import threading
import time
import uuid
from datetime import UTC, timedelta, timezone

import pytest
import yaml

from modeladapter.fsm.events import LoadFailed, PhaseChanged, PodSwitched, RecordedEvent, SpecObserved
from modeladapter.fsm.phases import Phase
from tests.audit.conftest import (
    MODELADAPTER,
    Databases,
    ProducedLog,
    Run,
    SandboxLog,
    append_events,
    at,
    copy_log,
    document,
    iso,
    sandbox_environment,
    timestamped_lines,
)
from tests.conftest import read_log


def _events(modeladapter: Run, url: str, *argv: str) -> list[dict]:
    return document(modeladapter, "events", "--database-url", url, *argv)


def _names_pod(event: RecordedEvent, pod: str) -> bool:
    payload = event.payload
    if isinstance(payload, PodSwitched):
        return pod in (payload.from_pod, payload.to_pod)
    return getattr(payload, "pod", None) == pod


def _in(namespace: str, everything: list[RecordedEvent]) -> list[RecordedEvent]:
    return [e for e in everything if e.namespace == namespace]


def _positions(found: list[dict]) -> list[int]:
    return [e["position"] for e in found]


# --- selection ------------------------------------------------------------------------------------------------


def test_without_filters_every_event_of_the_namespace_is_listed_in_log_order(
    produced_log: ProducedLog, modeladapter: Run
) -> None:
    everything = read_log(produced_log.database_url)
    found = _events(modeladapter, produced_log.database_url)
    assert _positions(found) == [e.position for e in _in("default", everything)]
    first, recorded = found[0], _in("default", everything)[0]
    assert first["uid"] == recorded.stream_id and first["type"] == recorded.payload.type
    assert first["payload"] == recorded.payload.model_dump(mode="json") and first["narration"]
    assert first["recorded_at"] == iso(recorded.recorded_at) and first["recorded_at"].endswith("Z")


def test_all_namespaces_with_A_one_namespace_with_n(produced_log: ProducedLog, modeladapter: Run) -> None:
    everything = read_log(produced_log.database_url)
    assert _positions(_events(modeladapter, produced_log.database_url, "-A")) == [e.position for e in everything]
    team_b = _events(modeladapter, produced_log.database_url, "-n", "team-b")
    assert _positions(team_b) == [e.position for e in _in("team-b", everything)]
    assert {e["name"] for e in team_b} == {"waiting", "broken"}
    assert _positions(_events(modeladapter, produced_log.database_url, "-n", "team-b", "-A")) == [
        e.position for e in everything
    ]
    assert _events(modeladapter, produced_log.database_url, "-n", "nobody-here") == []


def test_adapter_selects_every_incarnation_of_the_name(produced_log: ProducedLog, modeladapter: Run) -> None:
    found = _events(modeladapter, produced_log.database_url, "--adapter", "reborn")
    assert {e["name"] for e in found} == {"reborn"} and len({e["uid"] for e in found}) == 2
    expected = [
        e.position for e in read_log(produced_log.database_url) if e.name == "reborn" and e.namespace == "default"
    ]
    assert _positions(found) == expected
    types = [e["type"] for e in found]
    assert "Finalized" in types and types.index("Finalized") < len(types) - 1, "the re-created one follows"


def test_type_selects_one_or_several_event_types(produced_log: ProducedLog, modeladapter: Run) -> None:
    everything = _in("default", read_log(produced_log.database_url))
    failed = _events(modeladapter, produced_log.database_url, "--type", "LoadFailed")
    assert {e["type"] for e in failed} == {"LoadFailed"} and len(failed) == 6, "chaos: 1 fatal + 5 retriable"
    both = _events(modeladapter, produced_log.database_url, "--type", "LoadFailed", "--type", "PodSwitched")
    assert _positions(both) == [e.position for e in everything if e.payload.type in ("LoadFailed", "PodSwitched")]
    combined = _events(modeladapter, produced_log.database_url, "--type", "PodLost", "--adapter", "mover")
    assert [(e["name"], e["payload"]["pod"]) for e in combined] == [("mover", produced_log.lost_pod)]


def test_pod_selects_events_that_name_it_including_either_side_of_a_switch(
    produced_log: ProducedLog, modeladapter: Run
) -> None:
    fatal = produced_log.chaos_pods["fatal"]
    found = _events(modeladapter, produced_log.database_url, "--pod", fatal)
    expected = [e.position for e in _in("default", read_log(produced_log.database_url)) if _names_pod(e, fatal)]
    assert _positions(found) == expected
    switches = [(e["payload"]["from_pod"], e["payload"]["to_pod"]) for e in found if e["type"] == "PodSwitched"]
    assert len(switches) == 2 and all(from_pod == fatal for from_pod, _ in switches)
    assert {"LoadFailed", "PlacementExhausted", "PlacementChanged", "PodSelected"} <= {e["type"] for e in found}
    assert _events(modeladapter, produced_log.database_url, "--pod", "no-such-pod") == []


def test_since_and_until_bound_the_recording_time_both_inclusive(produced_log: ProducedLog, modeladapter: Run) -> None:
    everything = _in("default", read_log(produced_log.database_url))
    failures = [e for e in everything if e.payload.type == "LoadFailed"]
    since, until = failures[1].recorded_at, failures[-1].recorded_at
    expected = [e.position for e in everything if since <= e.recorded_at <= until]
    assert 0 < len(expected) < len(everything)
    assert (
        _positions(_events(modeladapter, produced_log.database_url, "--since", iso(since), "--until", iso(until)))
        == expected
    )
    # The same instants with an offset, and without a zone (read as UTC), select the same events.
    plus_one = timezone(timedelta(hours=1))
    with_offset = ("--since", since.astimezone(plus_one).isoformat(), "--until", until.astimezone(plus_one).isoformat())
    assert _positions(_events(modeladapter, produced_log.database_url, *with_offset)) == expected
    naive = ("--since", since.strftime("%Y-%m-%d %H:%M:%S.%f"), "--until", until.strftime("%Y-%m-%d %H:%M:%S.%f"))
    assert _positions(_events(modeladapter, produced_log.database_url, *naive)) == expected
    only_since = _events(modeladapter, produced_log.database_url, "--since", iso(since))
    assert _positions(only_since) == [e.position for e in everything if e.recorded_at >= since]


def test_relative_times_count_back_from_now(produced_log: ProducedLog, modeladapter: Run) -> None:
    # The log was written a moment ago, in this test session.
    everything = [e.position for e in _in("default", read_log(produced_log.database_url))]
    assert _positions(_events(modeladapter, produced_log.database_url, "--since", "10m")) == everything
    assert _positions(_events(modeladapter, produced_log.database_url, "--since", "1d", "--until", "now")) == everything
    assert _events(modeladapter, produced_log.database_url, "--until", "10m") == []
    assert _events(modeladapter, produced_log.database_url, "--since", "now") == []


def test_limit_keeps_the_newest_n_in_log_order(produced_log: ProducedLog, modeladapter: Run) -> None:
    everything = _positions(_events(modeladapter, produced_log.database_url))
    assert _positions(_events(modeladapter, produced_log.database_url, "--limit", "5")) == everything[-5:]
    assert _positions(_events(modeladapter, produced_log.database_url, "--limit", "100000")) == everything
    newest_failures = _events(modeladapter, produced_log.database_url, "--type", "LoadFailed", "--limit", "2")
    assert [e["payload"]["attempt"] for e in newest_failures] == [4, 5]


# --- output ---------------------------------------------------------------------------------------------------


def test_the_table_has_one_row_per_event_with_millisecond_utc_times(
    produced_log: ProducedLog, modeladapter: Run
) -> None:
    result = modeladapter("events", "--adapter", "chaos", "--database-url", produced_log.database_url)
    assert result.code == 0 and result.err == ""
    header, *rest = result.out.splitlines()
    assert header.split() == ["TIME", "ADAPTER", "TYPE", "EVENT"]
    rows = timestamped_lines(result.out)
    assert len(rows) == len(rest)
    found = _events(modeladapter, produced_log.database_url, "--adapter", "chaos")
    assert len(rows) == len(found)
    for row, event in zip(rows, found, strict=True):
        # 2026-11-26T21:49:35.592Z: UTC, milliseconds
        assert row.startswith(event["recorded_at"][:23] + "Z  ")
        assert (
            "default/chaos" in row
            and f" {event['type']} " in row
            and row.endswith(" ".join(event["narration"].split()))
        )


def test_json_and_yaml_carry_the_same_events(produced_log: ProducedLog, modeladapter: Run) -> None:
    argv = ("events", "-A", "--type", "PhaseChanged", "--database-url", produced_log.database_url)
    as_json = modeladapter(*argv, "-o", "json")
    as_yaml = modeladapter(*argv, "-o", "yaml")
    assert as_json.code == as_yaml.code == 0
    assert json.loads(as_json.out) == yaml.safe_load(as_yaml.out) and json.loads(as_json.out)


def test_an_empty_selection_is_an_empty_list_or_a_bare_header(produced_log: ProducedLog, modeladapter: Run) -> None:
    assert _events(modeladapter, produced_log.database_url, "--pod", "nowhere") == []
    table = modeladapter("events", "--pod", "nowhere", "--database-url", produced_log.database_url)
    assert table.code == 0 and table.out.split() == ["TIME", "ADAPTER", "TYPE", "EVENT"]


# --- --follow -------------------------------------------------------------------------------------------------


class Follower:
    """`modeladapter events --follow ...` as a child process, its stdout read line by line."""

    def __init__(self, *argv: str) -> None:
        self.process = subprocess.Popen(
            [MODELADAPTER, "events", "--follow", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=sandbox_environment(),
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def read(self, count: int, timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        got: list[str] = []
        while len(got) < count:
            try:
                got.append(self.lines.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                stderr = self.process.stderr.read() if self.process.poll() is not None and self.process.stderr else ""
                raise AssertionError(f"--follow printed {got} and then nothing for {timeout:g} s {stderr}") from None
        return got

    def quiet_for(self, seconds: float) -> list[str]:
        time.sleep(seconds)
        extra = []
        while not self.lines.empty():
            extra.append(self.lines.get())
        return extra

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C; the exit status and stderr."""
        self.process.send_signal(signal.SIGINT)
        _, stderr = self.process.communicate(timeout=15)
        return self.process.returncode, stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _arrive(url: str, name: str, namespace: str = "default") -> str:
    """A new adapter's first two events appended to the log, as the operator would on its first reconcile."""
    uid = str(uuid.uuid4())
    observed = SpecObserved(generation=1, artifact_url="huggingface://org/late", replicas=1,
                            scheduler_name="default", pod_selector="app=late")  # fmt: skip
    pending = PhaseChanged(from_phase=None, to_phase=Phase.PENDING, trigger="created",
                           reason="ModelAdapterPending", message="Starting reconciliation")  # fmt: skip
    asyncio.run(append_events(url, uid, [observed, pending], namespace=namespace, name=name))
    return uid


def test_follow_prints_the_backlog_then_each_new_event_until_ctrl_c(
    produced_log: ProducedLog, databases: Databases
) -> None:
    url = copy_log(produced_log.database_url, databases)
    newest = read_log(url)[-1].position
    follower = Follower("-A", "-o", "json", "--limit", "3", "--database-url", url)
    try:
        backlog = [json.loads(line) for line in follower.read(3)]
        assert _positions(backlog) == [newest - 2, newest - 1, newest]
        assert follower.quiet_for(1.0) == [], "nothing new: nothing printed"
        uid = _arrive(url, "latecomer")
        arrived = [json.loads(line) for line in follower.read(2)]
        assert [(e["uid"], e["name"], e["type"], e["position"]) for e in arrived] == [
            (uid, "latecomer", "SpecObserved", newest + 1),
            (uid, "latecomer", "PhaseChanged", newest + 2),
        ]
        code, stderr = follower.interrupt()
    finally:
        follower.kill()
    assert code == 0 and stderr == ""


def test_follow_applies_the_filters_to_new_events_and_prints_table_rows(
    produced_log: ProducedLog, databases: Databases
) -> None:
    url = copy_log(produced_log.database_url, databases)
    backlog = [e for e in read_log(url) if e.namespace == "team-b" and e.payload.type == "PhaseChanged"]
    follower = Follower("-n", "team-b", "--type", "PhaseChanged", "--database-url", url)
    try:
        header, *rows = follower.read(1 + len(backlog))
        assert header.split() == ["TIME", "ADAPTER", "TYPE", "EVENT"]
        assert [r.split()[1] for r in rows] == [f"team-b/{e.name}" for e in backlog]
        _arrive(url, "elsewhere")  # default namespace: filtered out
        _arrive(url, "late-b", namespace="team-b")  # SpecObserved filtered out, PhaseChanged shown
        (row,) = follower.read(1)
        assert row.split()[1:3] == ["team-b/late-b", "PhaseChanged"] and "Pending" in row
        assert row.split()[0].endswith("Z") and len(row.split()[0]) == len("2026-11-26T21:04:05.123Z")
        assert follower.quiet_for(1.0) == []
        code, stderr = follower.interrupt()
    finally:
        follower.kill()
    assert code == 0 and stderr == ""


# --- against a `modeladapter sandbox --chaos` log -------------------------------------------------------------


def test_sandbox_chaos_failed_loads_are_listed_with_their_attempts_and_errors(
    sandbox_log: SandboxLog, modeladapter: Run
) -> None:
    failed = _events(modeladapter, sandbox_log.database_url, "--type", "LoadFailed")
    assert [e["payload"]["attempt"] for e in failed] == [1, 2, 3], "seed 7: the first 3 loads on one pod fail"
    assert len({e["payload"]["pod"] for e in failed}) == 1 and {e["name"] for e in failed} == {sandbox_log.name}
    assert all(e["payload"]["retriable"] and "502" in e["payload"]["error"] for e in failed)
    faulty = failed[0]["payload"]["pod"]
    on_pod = _events(modeladapter, sandbox_log.database_url, "--pod", faulty)
    assert [e["payload"]["attempt"] for e in on_pod if e["type"] == "LoadSucceeded"] == [4]


def test_sandbox_chaos_pod_deletion_is_one_pod_lost_event(sandbox_log: SandboxLog, modeladapter: Run) -> None:
    (lost,) = _events(modeladapter, sandbox_log.database_url, "--type", "PodLost", "--adapter", sandbox_log.name)
    victim = lost["payload"]["pod"]
    assert lost["payload"]["reason"] == "pod deleted" and victim in lost["narration"]
    assert f"deleting pod {victim}" in sandbox_log.output
    after = _events(modeladapter, sandbox_log.database_url, "--since", lost["recorded_at"])
    assert lost in after and all(at(e["recorded_at"]) >= at(lost["recorded_at"]) for e in after)
    unloaded = [e["payload"] for e in after if e["type"] == "Unloaded"]
    assert {"type": "Unloaded", "schema_version": 1, "pod": victim, "outcome": "pod-gone"} in unloaded


def test_times_are_utc_with_milliseconds_whatever_the_local_time_zone(
    produced_log: ProducedLog, modeladapter: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ("events", "--adapter", "chaos", "--type", "LoadFailed", "--database-url", produced_log.database_url)
    in_utc = modeladapter(*argv).out
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # +05:30: any local rendering would show
    time.tzset()
    try:
        assert time.strftime("%z") == "+0530"
        elsewhere = modeladapter(*argv).out
    finally:
        monkeypatch.undo()
        time.tzset()
    assert elsewhere == in_utc
    failure = next(
        e
        for e in read_log(produced_log.database_url)
        if e.name == "chaos" and e.payload.type == "LoadFailed" and e.payload.retriable
    )
    assert isinstance(failure.payload, LoadFailed) and failure.payload.retry_at is not None
    attempt = f"load attempt {failure.payload.attempt} on {failure.payload.pod} failed"
    row = next(r for r in timestamped_lines(in_utc) if r.startswith(iso(failure.recorded_at)[:23]) and attempt in r)
    assert f"retry at {failure.payload.retry_at.astimezone(UTC):%H:%M:%S.%f}"[:-3] in row
