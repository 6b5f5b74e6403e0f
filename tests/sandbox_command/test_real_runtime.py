"""`modeladapter sandbox --runtime aibrix`: AIBrix's real runtime (aibrix 0.8.0) beside each simulated engine
downloads the sample adapter from the sandbox's own S3 store (moto), with the keys of the Secret its
`credentialsSecretRef` names, and the adapter reaches Running on every pod, answering through the gateway.

The lane (`.ci/prepare/40-aibrix-runtime`) must be prepared; without it the sandbox refuses with status 2 and
names the prepare step, and this test fails with that message: it never skips.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from modeladapter.fsm.events import LoadStarted, LoadSucceeded
from modeladapter.sandbox.runtimes import BUCKET, SAMPLE_PREFIX
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

pytestmark = pytest.mark.aibrix_runtime


def test_the_sample_is_downloaded_from_s3_by_the_real_runtime_on_every_pod(
    tmp_path: Path, background: list[Background]
) -> None:
    sandbox = Background(tmp_path, "--runtime", "aibrix")
    background.append(sandbox)
    sandbox.wait_for("Ctrl-C stops the sandbox", timeout=180)  # the last of the hints, with the curls
    (completion,) = [line.strip() for line in sandbox.stdout.splitlines() if "/v1/completions" in line]
    answered = subprocess.run(["bash", "-c", completion], capture_output=True, text=True, timeout=60)
    run = sandbox.interrupt()

    assert run.code == 0, run.explain()
    assert f"the sample is s3://{BUCKET}/{SAMPLE_PREFIX}" in run.stdout
    assert run.stdout.count("AIBrix runtime 0.8.0 at http://") == 3
    assert phases_printed(run.stdout, f"default/{SAMPLE}") == TIMELINE
    assert json.loads(answered.stdout)["model"] == SAMPLE, answered.stdout
    [stream] = streams_of(read_log(sqlite_url(tmp_path / ".modeladapter" / "events.db")), SAMPLE)
    assert phases_in_log(stream) == TIMELINE
    loads = [e.payload for e in stream if isinstance(e.payload, LoadStarted)]
    assert {load.artifact_url for load in loads} == {f"s3://{BUCKET}/{SAMPLE_PREFIX}"}
    assert len([e for e in stream if isinstance(e.payload, LoadSucceeded)]) == 3
    assert "sandbox-secret-key" not in run.stdout + run.stderr, "the store's keys are never shown"
