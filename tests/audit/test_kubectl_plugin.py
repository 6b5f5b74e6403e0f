"""`kubectl modeladapter ...`: the console script `kubectl-modeladapter` on PATH is a kubectl plugin.

kubectl finds `kubectl-modeladapter` on PATH and runs it with the remaining arguments; the program names itself
`kubectl modeladapter` in usage and errors. Uses kubectl v1.20.2 from the real-apiserver lane
(`.ci/prepare/20-kube-apiserver` builds it); without it the test fails and says so, it never skips.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modeladapter.sandbox.realcluster import PREPARE_SCRIPT, VERSION, cache_dir
from tests.audit.conftest import small_log

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def kubectl() -> Path:
    binary = cache_dir() / "bin" / "kubectl"
    if not os.access(binary, os.X_OK):
        pytest.fail(f"kubectl {VERSION} is not at {binary}; run {PREPARE_SCRIPT} from the repository root "
                    "(it builds kubectl with the real-apiserver lane, once, and caches it)", pytrace=False)  # fmt: skip
    return binary


def _kubectl(kubectl: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """kubectl with only the venv's scripts and kubectl itself on PATH, and no kubeconfig anywhere."""
    environment = {
        "PATH": os.pathsep.join([str(VENV_BIN), str(kubectl.parent)]),
        "HOME": str(cwd),
        "LANG": "C.UTF-8",
    }
    return subprocess.run([str(kubectl), *argv], capture_output=True, text=True, env=environment, cwd=cwd, timeout=60)


def test_the_plugin_is_found_on_path(kubectl: Path, tmp_path: Path) -> None:
    listed = _kubectl(kubectl, "plugin", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert str(VENV_BIN / "kubectl-modeladapter") in listed.stdout.splitlines()


def test_kubectl_modeladapter_history_prints_the_timeline(kubectl: Path, tmp_path: Path) -> None:
    url = small_log(tmp_path, name="qwen-code-lora")
    table = _kubectl(kubectl, "modeladapter", "history", "qwen-code-lora", "--database-url", url, cwd=tmp_path)
    assert (table.returncode, table.stderr) == (0, "")
    lines = table.stdout.splitlines()
    assert lines[0].startswith("default/qwen-code-lora  incarnation 1 of 1  uid uid-qwen-code-lora  created ")
    assert lines[1].split()[:3] == ["TIME", "PHASE", "TRIGGER"]
    phases = [line.split()[1:4] for line in lines[2:] if "->" in line.split()[1:4]]
    assert phases == [["-", "->", "Pending"], ["Pending", "->", "Scheduled"], ["Scheduled", "->", "Loading"],
                      ["Loading", "->", "Bound"], ["Bound", "->", "Running"]]  # fmt: skip
    assert any("LoadFailed: load attempt 1 on pod-a failed (retriable" in line for line in lines)
    as_json = _kubectl(
        kubectl, "modeladapter", "history", "qwen-code-lora", "--database-url", url, "-o", "json", cwd=tmp_path
    )
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["incarnations"][0]["current_phase"] == "Running"


def test_usage_and_errors_name_the_command_as_typed(kubectl: Path, tmp_path: Path) -> None:
    usage = _kubectl(kubectl, "modeladapter", "--help", cwd=tmp_path)
    assert usage.returncode == 0 and usage.stdout.startswith("usage: kubectl modeladapter ")
    missing = _kubectl(kubectl, "modeladapter", "history", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.startswith("usage: kubectl modeladapter history ")
    assert "kubectl modeladapter history: error: the following arguments are required: NAME" in missing.stderr
    url = small_log(tmp_path)
    unknown = _kubectl(kubectl, "modeladapter", "history", "chaoss", "--database-url", url, cwd=tmp_path)
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1
    assert unknown.stderr.startswith("kubectl modeladapter history: no ModelAdapter default/chaoss in the event log")
    no_log = _kubectl(kubectl, "modeladapter", "stats", cwd=tmp_path)
    assert no_log.returncode == 2 and no_log.stderr.startswith(
        "kubectl modeladapter stats: no event log at .modeladapter/events.db"
    )
