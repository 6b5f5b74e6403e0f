"""`modeladapter sandbox -f FILE`: the user's ModelAdapters instead of the sample; what happens when one cannot run."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeladapter.fsm.events import LoadSucceeded
from tests.conftest import read_log
from tests.sandbox_command.conftest import (
    SAMPLE,
    TIMELINE,
    Finished,
    phases_in_log,
    phases_printed,
    run_sandbox,
    sqlite_url,
    streams_of,
)

ARTIFACT = "huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora"
TWO_ADAPTERS = f"""\
apiVersion: model.aibrix.ai/v1alpha1
kind: ModelAdapter
metadata:
  name: llama-sql-lora
  namespace: default
spec:
  podSelector:
    matchLabels:
      model.aibrix.ai/name: qwen-coder-1-5b-instruct
  artifactURL: {ARTIFACT}
  replicas: 2
  schedulerName: bin-pack
---
apiVersion: model.aibrix.ai/v1alpha1
kind: ModelAdapter
metadata:
  name: docs-lora
spec:
  podSelector:
    matchExpressions:
      - {{key: adapter.model.aibrix.ai/enabled, operator: In, values: ["true"]}}
  artifactURL: {ARTIFACT}
  replicas: 1
"""
NOWHERE = f"""\
apiVersion: model.aibrix.ai/v1alpha1
kind: ModelAdapter
metadata:
  name: nowhere-lora
spec:
  podSelector:
    matchLabels:
      model.aibrix.ai/name: a-model-no-pod-serves
  artifactURL: {ARTIFACT}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Finished, Path]:
    workdir = tmp_path_factory.mktemp("from-file")
    (workdir / "adapters.yaml").write_text(TWO_ADAPTERS)
    return run_sandbox(workdir, "--exit-when-running", "-f", "adapters.yaml"), workdir


class TestAdaptersFromAFile:
    def test_every_adapter_in_the_file_reaches_running_and_the_sample_is_not_applied(
        self, run: tuple[Finished, Path]
    ) -> None:
        finished, _ = run
        assert finished.code == 0, finished.explain()
        assert "applied ModelAdapter default/llama-sql-lora (from -f)" in finished.stdout
        assert "applied ModelAdapter default/docs-lora (from -f)" in finished.stdout
        assert SAMPLE not in finished.stdout
        assert "all 2 adapter(s) Running" in finished.stdout.splitlines()[-1]

    def test_each_prints_the_documented_timeline(self, run: tuple[Finished, Path]) -> None:
        finished, _ = run
        assert phases_printed(finished.stdout, "default/llama-sql-lora") == TIMELINE
        assert phases_printed(finished.stdout, "default/docs-lora") == TIMELINE

    def test_the_log_keeps_each_adapter_s_stream_with_its_replicas(self, run: tuple[Finished, Path]) -> None:
        _, workdir = run
        log = read_log(sqlite_url(workdir / ".modeladapter" / "events.db"))
        [llama] = streams_of(log, "llama-sql-lora")
        [docs] = streams_of(log, "docs-lora")
        assert phases_in_log(llama) == TIMELINE and phases_in_log(docs) == TIMELINE
        assert len({e.payload.pod for e in llama if isinstance(e.payload, LoadSucceeded)}) == 2
        assert len({e.payload.pod for e in docs if isinstance(e.payload, LoadSucceeded)}) == 1


class TestAnAdapterThatCannotRun:
    def test_it_times_out_with_status_1_naming_the_stuck_phase_and_its_condition(self, tmp_path: Path) -> None:
        (tmp_path / "nowhere.yaml").write_text(NOWHERE)

        finished = run_sandbox(tmp_path, "--exit-when-running", "--timeout", "3s", "-f", "nowhere.yaml")

        assert finished.code == 1, finished.explain()
        report = finished.stdout[finished.stdout.index("timed out after 3 s") :]
        assert "default/nowhere-lora: stuck in Pending since " in report
        assert (
            "condition Scheduled=False NoCandidatePods: no healthy pod in namespace default matches model.aibrix.ai/name=a-model-no-pod-serves"
            in report
        )


class TestFilesThatCannotBeApplied:
    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (None, "missing.yaml: no such file"),
            ("spec: [unclosed\n", "missing.yaml: not valid YAML at line 2, column 1"),
            ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n", "missing.yaml: document 1 is v1 Pod, not "),
            ("- just\n- a list\n", "missing.yaml: document 1 is not a Kubernetes object"),
            ("", "missing.yaml: holds no YAML documents"),
        ],
        ids=["missing", "bad-yaml", "a-pod", "a-list", "empty"],
    )
    def test_a_file_that_is_not_modeladapters_is_refused_before_anything_starts(
        self, tmp_path: Path, content: str | None, message: str
    ) -> None:
        if content is not None:
            (tmp_path / "missing.yaml").write_text(content)

        finished = run_sandbox(tmp_path, "-f", "missing.yaml")

        assert finished.code == 2, finished.explain()
        assert finished.stderr.startswith(f"modeladapter sandbox: {message}")
        assert finished.stderr.count("\n") == 1 and "Traceback" not in finished.stderr
        assert finished.stdout == "" and not (tmp_path / ".modeladapter").exists()

    def test_a_modeladapter_the_api_server_rejects_is_named_with_the_api_server_s_reason(self, tmp_path: Path) -> None:
        (tmp_path / "invalid.yaml").write_text(
            "apiVersion: model.aibrix.ai/v1alpha1\nkind: ModelAdapter\nmetadata: {name: no-artifact}\n"
            "spec: {podSelector: {matchLabels: {model.aibrix.ai/name: qwen-coder-1-5b-instruct}}}\n"
        )

        finished = run_sandbox(tmp_path, "-f", "invalid.yaml")

        assert finished.code == 2, finished.explain()
        assert finished.stderr == (
            "modeladapter sandbox: the API server rejected default/no-artifact: ModelAdapter.model.aibrix.ai "
            '"no-artifact" is invalid: spec.artifactURL: Required value\n'
        )
