"""`modeladapter sandbox --chaos --seed N`: engine faults and a lost pod, retried and healed, before it exits.

One run with seed 1, whose plan (from `ChaosPlan.from_seed(1, 3)`) makes the first pod's engine drop its first
loads and then deletes a pod that serves the adapter; a replacement pod comes up at the same address.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modeladapter.fsm.events import LoadFailed, LoadSucceeded, PodLost, RecordedEvent
from modeladapter.fsm.state import fold
from modeladapter.sandbox.chaos import ChaosPlan
from tests.conftest import read_log
from tests.sandbox_command.conftest import (
    SAMPLE,
    Finished,
    phases_printed,
    run_sandbox,
    sqlite_url,
    streams_of,
)

SEED = 1


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chaos")


@pytest.fixture(scope="module")
def run(workdir: Path) -> Finished:
    return run_sandbox(workdir, "--exit-when-running", "--chaos", "--seed", str(SEED))


@pytest.fixture(scope="module")
def stream(run: Finished, workdir: Path) -> list[RecordedEvent]:
    [stream] = streams_of(read_log(sqlite_url(workdir / ".modeladapter" / "events.db")), SAMPLE)
    return stream


def said(run: Finished, pattern: str) -> str:
    """The first group of the first output line matching `pattern`."""
    match = re.search(pattern, run.stdout, re.MULTILINE)
    assert match is not None, f"no line matches {pattern!r}:\n{run.stdout}"
    return match.group(1)


class TestTheRun:
    def test_it_exits_0_once_the_adapter_runs_on_the_replacement_pod_too(self, run: Finished) -> None:
        assert run.code == 0, run.explain()
        replacement = said(run, r"^chaos: replacement pod (\S+) created")
        last_service = [line for line in run.stdout.splitlines() if f"service {SAMPLE} -> " in line][-1]
        assert last_service.count("127.") == 3, last_service
        assert re.search(rf"pod {replacement}: Loading -> Loaded", run.stdout), run.stdout

    def test_the_seed_names_the_plan_so_that_a_rerun_meets_the_same_faults(self, run: Finished) -> None:
        assert ChaosPlan.from_seed(SEED, 3).describe() in run.stdout
        assert f"rerun with --chaos --seed {SEED} for the same faults" in run.stdout

    def test_it_still_prints_the_documented_timeline(self, run: Finished) -> None:
        assert phases_printed(run.stdout, f"default/{SAMPLE}") == [
            "Pending",
            "Scheduled",
            "Loading",
            "Bound",
            "Running",
        ]

    def test_nothing_goes_to_stderr(self, run: Finished) -> None:
        assert run.stderr == ""


class TestWhatTheUserSees:
    def test_failed_loads_are_narrated_and_retried_on_the_same_pod(self, run: Finished) -> None:
        faulty = said(run, r"^chaos: the engine of (\S+) \(")
        assert re.search(rf"load attempt 1 on {faulty} failed \(retriable, retry at ", run.stdout), run.stdout
        assert re.search(rf"load attempt 2 on {faulty}: ", run.stdout), run.stdout
        assert re.search(rf"load attempt \d on {faulty} succeeded", run.stdout), run.stdout

    def test_the_deleted_pod_is_reported_lost_and_a_replacement_takes_its_place(self, run: Finished) -> None:
        victim = said(run, r"^chaos: deleting pod (\S+) ")
        replacement = said(run, r"^chaos: replacement pod (\S+) created")
        lines = run.stdout.splitlines()
        lost = next(i for i, line in enumerate(lines) if f"pod {victim} lost: pod deleted" in line)
        selected = next(i for i, line in enumerate(lines) if f"pod {replacement} selected by" in line)
        assert lost < selected

    def test_the_summary_counts_the_retries_and_the_lost_pod(self, run: Finished) -> None:
        summary = run.stdout.splitlines()[-1]
        plan = ChaosPlan.from_seed(SEED, 3)
        assert f"({plan.failures} failed load(s) retried, 1 pod(s) lost" in summary, summary


class TestTheEventLog:
    def test_it_holds_the_failed_loads_the_retry_that_healed_them_and_the_lost_pod(
        self, run: Finished, stream: list[RecordedEvent]
    ) -> None:
        failed = [e.payload for e in stream if isinstance(e.payload, LoadFailed)]
        assert failed and all(payload.retriable for payload in failed)
        healed = [e.payload for e in stream if isinstance(e.payload, LoadSucceeded) and e.payload.pod == failed[0].pod]
        assert healed and healed[-1].attempt == len(failed) + 1
        victim = said(run, r"^chaos: deleting pod (\S+) ")
        assert [e.payload.pod for e in stream if isinstance(e.payload, PodLost)] == [victim]

    def test_folding_it_gives_the_adapter_running_on_the_replacement_instead_of_the_lost_pod(
        self, run: Finished, stream: list[RecordedEvent]
    ) -> None:
        state = fold(stream)
        assert str(state.phase) == "Running"
        victim = said(run, r"^chaos: deleting pod (\S+) ")
        replacement = said(run, r"^chaos: replacement pod (\S+) created")
        assert replacement in state.instances and victim not in state.instances
        assert len(state.instances) == 3
