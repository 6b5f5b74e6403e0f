"""The operator against a real vLLM 0.32 on this CPU (the real-engine lane): load, serve, reload, unload.

A pod in the emulator gets the address of a real vLLM server (127.0.0.20:8000) started with `--api-key`; the
ModelAdapter names a PEFT adapter the lane built locally and takes the key from a Secret. Never skipped:
without the lane (`.ci/prepare/30-vllm`) the test fails and says how to prepare it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from modeladapter.operator.kube.client import SECRETS
from modeladapter.sandbox.engine.vllm_lane import Lane, VllmServer
from tests.e2e.conftest import POD_LABELS, Sandbox, adapter_manifest

pytestmark = pytest.mark.vllm

POD_IP = "127.0.0.20"
KEY = "real-engine-key"


@pytest.fixture(scope="module")
def real_engine() -> Iterator[tuple[VllmServer, Lane]]:
    lane = Lane()
    problem = lane.problem()
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    server = VllmServer(POD_IP, 8000, lane=lane, api_key=KEY)
    try:
        server.start()
    except RuntimeError as error:
        pytest.fail(f"the real vLLM did not start: {error}", pytrace=False)
    try:
        yield server, lane
    finally:
        server.stop()


async def served(server: VllmServer, name: str) -> str | None:
    """The `root` under which the real engine serves `name`, if it does."""
    async with httpx.AsyncClient() as http:
        models = (await http.get(f"{server.base_url}/v1/models", headers={"Authorization": f"Bearer {KEY}"})).json()
    return next((m["root"] for m in models["data"] if m["id"] == name), None)


async def test_the_operator_drives_a_real_vllm(sandbox: Sandbox, real_engine: tuple[VllmServer, Lane]) -> None:
    server, lane = real_engine
    await sandbox.kubelet.create_pod(
        "real-vllm-0", "default", labels=POD_LABELS, ip=POD_IP, since=datetime.now(UTC) - timedelta(minutes=5)
    )
    await sandbox.kube.create(
        SECRETS,
        "default",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "vllm-key"},
            "data": {"api-key": base64.b64encode(KEY.encode()).decode()},
        },
    )
    await sandbox.start_operator()
    first, second = str(lane.adapter("lora-a")), str(lane.adapter("lora-b"))
    await sandbox.apply(adapter_manifest("sql-lora", artifactURL=first, apiKeySecretRef={"name": "vllm-key"}))
    status = await sandbox.phase("Running", "sql-lora", timeout=60)
    assert status["instances"] == ["real-vllm-0"]
    assert await served(server, "sql-lora") == first

    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{server.base_url}/v1/completions",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"model": "sql-lora", "prompt": "Hello world", "max_tokens": 4, "temperature": 0},
            timeout=60,
        )
    assert answer.status_code == 200 and answer.json()["model"] == "sql-lora"

    await sandbox.apply(adapter_manifest("sql-lora", artifactURL=second, apiKeySecretRef={"name": "vllm-key"}))
    await sandbox.eventually(lambda: _root_is(server, second), timeout=60, what="the reload from the new path")
    await sandbox.eventually(lambda: _generation_running(sandbox), timeout=60, what="generation 2 Running")

    await sandbox.delete("sql-lora")
    await sandbox.eventually(lambda: _root_is(server, None), timeout=60, what="the unload")


async def _root_is(server: VllmServer, root: str | None) -> bool:
    return await served(server, "sql-lora") == root


async def _generation_running(sandbox: Sandbox) -> bool:
    status = await sandbox.status("sql-lora")
    return status.get("observedGeneration") == 2 and status.get("phase") == "Running"
