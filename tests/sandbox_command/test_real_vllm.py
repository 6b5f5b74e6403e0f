"""`modeladapter sandbox --engine vllm`: the sample adapter on a pod served by a real vLLM 0.32 on this CPU.

The lane (`.ci/prepare/30-vllm`) must be prepared; without it the sandbox refuses with status 2 and names the
prepare step, and this test fails with that message: it never skips. vLLM takes tens of seconds to start. Once
the adapter is Running, the completion the sandbox prints is sent as printed: through the Envoy gateway, by the
adapter's name, to the real engine.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from modeladapter.fsm.events import LoadStarted
from modeladapter.sandbox.engine.vllm_lane import Lane
from tests.conftest import read_log
from tests.sandbox_command.conftest import (
    SAMPLE,
    TIMELINE,
    Background,
    phases_in_log,
    phases_printed,
    sqlite_url,
    streams_of,
)

pytestmark = pytest.mark.vllm


def test_the_sample_adapter_runs_on_a_real_vllm_pod_and_answers_through_the_gateway(
    tmp_path: Path, background: list[Background]
) -> None:
    sandbox = Background(tmp_path, "--engine", "vllm", "--pods", "1", pods=1)
    background.append(sandbox)
    sandbox.wait_for("Ctrl-C stops the sandbox", timeout=900)  # the last line of the hints
    (completion,) = [line.strip() for line in sandbox.stdout.splitlines() if "/v1/completions" in line]
    answered = subprocess.run(["bash", "-c", completion], capture_output=True, text=True, timeout=60)
    run = sandbox.interrupt()

    assert run.code == 0, run.explain()
    assert phases_printed(run.stdout, f"default/{SAMPLE}") == TIMELINE
    assert "pod Ready" in run.stdout  # the pod turned Ready only once vLLM answered
    assert "127.0.0.1:" in completion and ":8000/" not in completion, "the printed curl goes to the gateway"
    answer = json.loads(answered.stdout)
    assert answer["model"] == SAMPLE and answer["choices"][0]["text"], answered.stdout
    [stream] = streams_of(read_log(sqlite_url(tmp_path / ".modeladapter" / "events.db")), SAMPLE)
    assert phases_in_log(stream) == TIMELINE
    # The lane is offline: the sample points at the lane's own PEFT adapter instead of the Hugging Face Hub.
    loads = [e.payload for e in stream if isinstance(e.payload, LoadStarted)]
    assert loads and {load.artifact_url for load in loads} == {str(Lane().adapter("lora-a"))}
