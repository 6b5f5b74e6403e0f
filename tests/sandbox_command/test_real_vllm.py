"""`modeladapter sandbox --engine vllm`: the sample adapter on a pod served by a real vLLM 0.32 on this CPU.

The lane (`.ci/prepare/30-vllm`) must be prepared; without it the sandbox refuses with status 2 and names the
prepare step, and this test fails with that message: it never skips. vLLM takes tens of seconds to start.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from modeladapter.fsm.events import LoadStarted
from modeladapter.sandbox.engine.vllm_lane import Lane
from tests.conftest import read_log
from tests.sandbox_command.conftest import (
    SAMPLE,
    TIMELINE,
    phases_in_log,
    phases_printed,
    run_sandbox,
    sqlite_url,
    streams_of,
)

pytestmark = pytest.mark.vllm


def test_the_sample_adapter_runs_on_a_real_vllm_pod(tmp_path: Path) -> None:
    run = run_sandbox(tmp_path, "--engine", "vllm", "--pods", "1", "--exit-when-running", pods=1, timeout=900)

    assert run.code == 0, run.explain()
    assert phases_printed(run.stdout, f"default/{SAMPLE}") == TIMELINE
    assert "pod Ready" in run.stdout  # the pod turned Ready only once vLLM answered
    [stream] = streams_of(read_log(sqlite_url(tmp_path / ".modeladapter" / "events.db")), SAMPLE)
    assert phases_in_log(stream) == TIMELINE
    # The lane is offline: the sample points at the lane's own PEFT adapter instead of the Hugging Face Hub.
    loads = [e.payload for e in stream if isinstance(e.payload, LoadStarted)]
    assert loads and {load.artifact_url for load in loads} == {str(Lane().adapter("lora-a"))}
