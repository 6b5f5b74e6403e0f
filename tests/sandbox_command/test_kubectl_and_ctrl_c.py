"""kubectl against a serving sandbox's kubeconfig, Ctrl-C, and a second run that appends to the same log.

The sandbox runs as the README says (no `--exit-when-running`) in the background; once it prints that the
sample adapter is Running, kubectl 1.20 (built by `.ci/prepare/20-kube-apiserver`) reads it through
`.modeladapter/kubeconfig`, exactly the command line the sandbox suggests. Then SIGINT, as Ctrl-C sends, and a
second run in the same directory.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modeladapter.fsm.events import RecordedEvent
from modeladapter.sandbox.realcluster import PREPARE_SCRIPT, cache_dir
from tests.conftest import read_log
from tests.sandbox_command.conftest import (
    SAMPLE,
    TIMELINE,
    Background,
    Finished,
    phases_in_log,
    phases_printed,
    run_sandbox,
    sqlite_url,
    streams_of,
)

RUNNING = "all 1 adapter(s) Running. Meanwhile, in another terminal:"


def kubectl_binary() -> Path:
    """kubectl v1.20.2 from the real-apiserver lane; the test fails (never skips) without it."""
    binary = cache_dir() / "bin" / "kubectl"
    if not os.access(binary, os.X_OK):
        pytest.fail(f"kubectl v1.20.2 is missing ({binary}); run {PREPARE_SCRIPT} from the repository root")
    return binary


@dataclass(frozen=True)
class Visit:
    """What kubectl showed while the sandbox served, and how the sandbox ended."""

    adapters: dict[str, Any]
    pods: dict[str, Any]
    table: str
    described: str
    curls: dict[str, dict[str, Any]]
    """The curl lines the sandbox printed, as printed, run through a shell: the command line -> its JSON answer."""
    stopped: Finished
    log_after_first_run: list[RecordedEvent]
    lease: dict[str, Any]
    """The leader-election Lease, as kubectl showed it while the sandbox served."""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kubectl")


@pytest.fixture(scope="module")
def visit(workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Visit:
    binary = kubectl_binary()
    home = tmp_path_factory.mktemp("kubectl-home")  # kubectl's discovery cache goes here, not to ~/.kube

    def kubectl(*args: str) -> str:
        result = subprocess.run(
            [str(binary), "--kubeconfig", ".modeladapter/kubeconfig", *args], cwd=workdir,
            env={**os.environ, "HOME": str(home)}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}"
        return result.stdout

    sandbox = Background(workdir)
    try:
        sandbox.wait_for(RUNNING)
        sandbox.wait_for("Ctrl-C stops the sandbox")  # the last of the hints, with the curls to try
        adapters = json.loads(kubectl("get", "modeladapters", "-o", "json"))
        pods = json.loads(kubectl("get", "pods", "-o", "json"))
        table = kubectl("get", "ma")
        described = kubectl("describe", "modeladapter", SAMPLE)
        lease = json.loads(kubectl("-n", "modeladapter-system", "get", "lease", "modeladapter-operator", "-o", "json"))
        curls = {line: _shell_json(line) for line in _printed_curls(sandbox.stdout)}
        stopped = sandbox.interrupt()
    finally:
        sandbox.kill()
    return Visit(
        adapters,
        pods,
        table,
        described,
        curls,
        stopped,
        read_log(sqlite_url(workdir / ".modeladapter" / "events.db")),
        lease,
    )


def _printed_curls(output: str) -> list[str]:
    return [line.strip().split("   (")[0] for line in output.splitlines() if line.strip().startswith("curl ")]


def _shell_json(command: str) -> dict[str, Any]:
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"{command} failed ({result.returncode}): {result.stderr}"
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


@pytest.fixture(scope="module")
def second_run(visit: Visit, workdir: Path) -> Finished:
    return run_sandbox(workdir, "--exit-when-running")


class TestKubectlWhileItServes:
    def test_the_sample_adapter_is_running_on_every_pod(self, visit: Visit) -> None:
        [adapter] = visit.adapters["items"]
        status = adapter["status"]
        pods = sorted(pod["metadata"]["name"] for pod in visit.pods["items"])
        assert adapter["metadata"]["name"] == SAMPLE
        assert status["phase"] == "Running"
        assert sorted(status["instances"]) == pods and len(pods) == 3
        assert status["readyReplicas"] == status["desiredReplicas"] == 3

    def test_the_pods_are_labelled_like_the_seed_documentation_s_base_model(self, visit: Visit) -> None:
        for pod in visit.pods["items"]:
            labels = pod["metadata"]["labels"]
            assert labels["model.aibrix.ai/name"] == "qwen-coder-1-5b-instruct"
            assert labels["adapter.model.aibrix.ai/enabled"] == "true"
            assert pod["status"]["podIP"].startswith("127.")

    def test_the_printer_columns_and_describe_tell_the_same(self, visit: Visit) -> None:
        header, row = visit.table.splitlines()[:2]
        assert header.split()[:4] == ["NAME", "PHASE", "DESIRED", "READY"]
        assert row.split()[:4] == [SAMPLE, "Running", "3", "3"]
        assert f"ModelAdapter default/{SAMPLE} is ready" in visit.described

    def test_the_sandbox_s_operator_holds_the_lease_an_installed_operator_would_and_says_so(self, visit: Visit) -> None:
        assert visit.lease["spec"]["holderIdentity"].startswith("sandbox-")
        assert "leader election on (Lease modeladapter-system/modeladapter-operator)" in visit.stopped.stdout


class TestTheGatewayWhileItServes:
    def test_the_printed_completion_reaches_the_sample_adapter_through_the_gateway(self, visit: Visit) -> None:
        (completion,) = [answer for line, answer in visit.curls.items() if "/v1/completions" in line]
        (line,) = [line for line in visit.curls if "/v1/completions" in line]
        assert "127.0.0.1:8000" not in line and ":8000/" not in line, "it goes to the gateway, not to a pod"
        assert completion["model"] == SAMPLE and completion["choices"][0]["text"]

    def test_the_printed_model_list_names_what_the_gateway_routes(self, visit: Visit) -> None:
        (models,) = [answer for line, answer in visit.curls.items() if "/v1/models" in line]
        assert {m["id"] for m in models["data"]} == {SAMPLE, "qwen-coder-1-5b-instruct"}


class TestCtrlC:
    def test_it_stops_with_status_0_and_says_the_log_keeps_everything(self, visit: Visit) -> None:
        assert visit.stopped.code == 0, visit.stopped.explain()
        assert visit.stopped.stdout.splitlines()[-1].startswith("stopping; the event log sqlite:///.modeladapter/")
        assert visit.stopped.stderr == ""

    def test_the_state_directory_is_unlocked_for_the_next_run(self, visit: Visit, second_run: Finished) -> None:
        assert second_run.code == 0, second_run.explain()


class TestASecondRun:
    def test_it_appends_a_new_stream_and_keeps_the_first_run_s_events(
        self, visit: Visit, second_run: Finished, workdir: Path
    ) -> None:
        log = read_log(sqlite_url(workdir / ".modeladapter" / "events.db"))
        assert log[: len(visit.log_after_first_run)] == visit.log_after_first_run
        first, second = streams_of(log, SAMPLE)
        assert phases_in_log(first)[:5] == TIMELINE and phases_in_log(second) == TIMELINE
        assert max(e.position for e in visit.log_after_first_run) < min(e.position for e in second)

    def test_its_output_tells_this_run_s_adapter_from_the_first_run_s(self, visit: Visit, second_run: Finished) -> None:
        assert phases_printed(second_run.stdout, f"default/{SAMPLE}") == TIMELINE
        first_pods = [pod["metadata"]["name"] for pod in visit.pods["items"]]
        about_them = [line for line in second_run.stdout.splitlines() if any(pod in line for pod in first_pods)]
        assert all(line.startswith("(earlier run) ") for line in about_them), about_them
