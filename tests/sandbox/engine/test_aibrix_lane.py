"""The real-runtime lane's bookkeeping, without starting anything: what counts as prepared, that a second
prepare does nothing, how a runtime is started, and that an unprepared lane fails the real tests instead of
skipping them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modeladapter.sandbox.engine.aibrix_lane import (
    DOWNLOADS,
    STAMP,
    VENVS,
    AibrixRuntime,
    MotoServer,
    RuntimeLane,
    clear_downloads,
    prepare,
    recipe,
)

REPO = Path(__file__).resolve().parents[3]


def stamped_lane(root: Path) -> RuntimeLane:
    lane = RuntimeLane(root)
    for name in VENVS:
        lane.venv(name).mkdir(parents=True)
        (lane.venv(name) / STAMP).write_text(json.dumps(recipe(name)))
    return lane


def test_an_empty_cache_is_not_prepared_and_says_how_to_prepare_it(tmp_path: Path) -> None:
    problem = RuntimeLane(tmp_path).problem()
    assert problem is not None and ".ci/prepare/40-aibrix-runtime" in problem


def test_a_stamp_from_another_recipe_does_not_count(tmp_path: Path) -> None:
    lane = stamped_lane(tmp_path)
    (lane.venv("aibrix-venv") / STAMP).write_text(json.dumps({"packages": ["aibrix==0.7.0"], "v": 1}))
    assert "aibrix-venv" in str(lane.problem())


def test_a_second_prepare_only_reads_the_stamps(tmp_path: Path) -> None:
    lane = stamped_lane(tmp_path)
    said: list[str] = []
    prepare(lane, log=said.append)
    assert lane.problem() is None
    assert said == [
        f"aibrix==0.8.0 is ready in {lane.venv('aibrix-venv')}",
        f"moto[server]==5.2.5 boto3 is ready in {lane.venv('moto-venv')}",
    ]


def test_a_runtime_fronts_its_pods_engine_with_no_aws_credentials_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-the-test-environment")
    runtime = AibrixRuntime("127.0.0.30", s3_endpoint="http://127.0.0.1:9000", lane=RuntimeLane(tmp_path))
    env = runtime.environment()
    assert runtime.base_url == "http://127.0.0.30:8080"
    assert env["INFERENCE_ENGINE"] == "vllm" and env["INFERENCE_ENGINE_VERSION"] == "0.32.0"
    assert env["INFERENCE_ENGINE_ENDPOINT"] == "http://127.0.0.30:8000"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000" and env["HF_HUB_OFFLINE"] == "1"
    assert "AWS_SECRET_ACCESS_KEY" not in env and "AWS_ACCESS_KEY_ID" not in env
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith(str(tmp_path)), "its own: the runtime empties it at start"
    other = AibrixRuntime("127.0.0.31", s3_endpoint="http://127.0.0.1:9000", lane=RuntimeLane(tmp_path))
    assert other.environment()["PROMETHEUS_MULTIPROC_DIR"] != env["PROMETHEUS_MULTIPROC_DIR"]


def test_starting_on_an_unprepared_lane_says_how_to_prepare_it(tmp_path: Path) -> None:
    for server in (
        AibrixRuntime("127.0.0.30", s3_endpoint="http://127.0.0.1:9000", lane=RuntimeLane(tmp_path)),
        MotoServer("127.0.0.1", 9000, lane=RuntimeLane(tmp_path)),
    ):
        try:
            server.start()
        except RuntimeError as error:
            assert ".ci/prepare/40-aibrix-runtime" in str(error)
        else:
            raise AssertionError(f"{server.what} started without a lane")


def test_clearing_downloads_removes_only_the_names_given() -> None:
    kept, cleared = DOWNLOADS / "lane-test-kept", DOWNLOADS / "lane-test-cleared"
    for folder in (kept, cleared):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "adapter_config.json").write_text("{}")
    try:
        clear_downloads(["lane-test-cleared", "lane-test-never-there"])
        assert kept.is_dir() and not cleared.exists()
    finally:
        clear_downloads(["lane-test-kept", "lane-test-cleared"])


def test_the_real_runtime_tests_fail_and_never_skip_when_the_lane_is_missing(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/e2e/test_real_aibrix_runtime.py", "-k", "before_any_download", "-q",
         "-p", "no:cacheprovider"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "MODELADAPTER_AIBRIX_CACHE": str(tmp_path / "empty")},
    )  # fmt: skip
    assert result.returncode == 1, result.stdout
    assert "1 error" in result.stdout or "1 failed" in result.stdout
    assert "skipped" not in result.stdout and ".ci/prepare/40-aibrix-runtime" in result.stdout


def test_the_prepare_step_is_an_executable_that_runs_the_lane_with_the_machines_python() -> None:
    step = REPO / ".ci" / "prepare" / "40-aibrix-runtime"
    assert os.access(step, os.X_OK)
    assert "sandbox/engine/aibrix_lane.py prepare" in step.read_text()
