"""The README's first command: `modeladapter sandbox` brings the seed documentation's sample adapter to Running.

One run with `--exit-when-running` in a fresh directory; the tests read its output, its state directory
(`./.modeladapter`: the SQLite event log, the kubeconfig) and what the audit commands make of that log.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import read_log
from tests.sandbox_command.conftest import (
    SAMPLE,
    TIMELINE,
    Finished,
    phases_in_log,
    phases_printed,
    run_modeladapter,
    run_sandbox,
    sqlite_url,
    streams_of,
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fresh-clone")


@pytest.fixture(scope="module")
def run(workdir: Path) -> Finished:
    return run_sandbox(workdir, "--exit-when-running")


class TestTheLiveOutput:
    def test_the_run_ends_with_status_0_once_the_adapter_is_running(self, run: Finished) -> None:
        assert run.code == 0, run.explain()
        assert "all 1 adapter(s) Running" in run.stdout.splitlines()[-1]

    def test_it_prints_the_documented_timeline_in_order(self, run: Finished) -> None:
        assert phases_printed(run.stdout, f"default/{SAMPLE}") == TIMELINE, run.stdout

    def test_it_says_what_it_started_and_where(self, run: Finished) -> None:
        assert "modeladapter sandbox: starting the API emulator, 3 pod(s)" in run.stdout
        assert "kubeconfig  .modeladapter/kubeconfig" in run.stdout
        assert "event log   sqlite:///.modeladapter/events.db" in run.stdout
        assert f"applied ModelAdapter default/{SAMPLE} (the seed documentation's sample adapter)" in run.stdout

    def test_it_loads_the_sample_onto_each_of_the_three_pods(self, run: Finished) -> None:
        loaded = [line for line in run.stdout.splitlines() if "Loading -> Loaded" in line]
        pods = {line.split("  pod ")[1].split(":")[0] for line in loaded}
        assert len(pods) == 3 and all(pod.startswith("qwen-coder-1-5b-instruct-") for pod in pods), loaded

    def test_a_pipe_gets_plain_lines_without_a_status_line(self, run: Finished) -> None:
        assert "\033" not in run.stdout and "\r" not in run.stdout
        assert "waiting" not in run.stdout

    def test_nothing_goes_to_stderr(self, run: Finished) -> None:
        assert run.stderr == ""


class TestTheStateDirectory:
    def test_the_sqlite_event_log_holds_the_adapter_s_stream(self, run: Finished, workdir: Path) -> None:
        log = workdir / ".modeladapter" / "events.db"
        assert log.is_file()
        [stream] = streams_of(read_log(sqlite_url(log)), SAMPLE)
        assert phases_in_log(stream) == TIMELINE
        assert {event.namespace for event in stream} == {"default"}

    def test_the_kubeconfig_points_kubectl_at_the_emulator_on_loopback(self, run: Finished, workdir: Path) -> None:
        kubeconfig = yaml.safe_load((workdir / ".modeladapter" / "kubeconfig").read_text())
        [cluster] = kubeconfig["clusters"]
        assert cluster["cluster"]["server"].startswith("http://127.0.0.1:")
        assert kubeconfig["current-context"]

    def test_the_operator_s_own_log_is_kept_out_of_the_terminal(self, run: Finished, workdir: Path) -> None:
        assert (workdir / ".modeladapter" / "operator.log").read_text().startswith("--- modeladapter sandbox starting")

    def test_modeladapter_history_reads_that_log_by_default(self, run: Finished, workdir: Path) -> None:
        history = run_modeladapter(workdir, "history", SAMPLE)
        assert history.code == 0, history.explain()
        assert "Bound -> Running" in history.stdout
