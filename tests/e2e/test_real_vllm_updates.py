"""The operator updates an adapter on a real vLLM 0.32 (the real-engine lane) without ever serving stale weights.

At temperature 0, a long prompt (several KV blocks) is sent through the adapter and cached; then
`spec.artifactURL` changes and the operator rolls the update. The same prompt through the updated adapter must
answer exactly as a fresh adapter loaded from the new artifact does, and differently from the old version:

* a **new path**: the new version lives in another folder (a direct engine, `hf://` or a local path);
* the **same path**: behind the AIBrix runtime sidecar, which downloads every version of `<name>` into one
  folder. vLLM 0.32 keys cached blocks on (name, path), so only the operator's `POST /reset_prefix_cache` keeps
  the old version's blocks from answering (the engine runs with `VLLM_SERVER_DEV_MODE=1`, as the user guide
  asks for engines behind the sidecar). The sidecar here is the simulated one, over HTTP in front of the real
  engine: what is under test is the engine's cache, and the sidecar's download folder is what makes the path
  the same.

Never skipped: without the lane (`.ci/prepare/30-vllm`) the tests fail and say how to prepare it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from modeladapter.sandbox.engine.runtime import SimulatedRuntimeSidecar
from modeladapter.sandbox.engine.vllm_lane import Lane, VllmServer
from tests.e2e.conftest import FAST, POD_LABELS, Raw, Sandbox, adapter_manifest

pytestmark = pytest.mark.vllm

POD_IP = "127.0.0.21"
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Kubernetes controllers reconcile desired state with actual state.",
    "LoRA adapters are loaded and unloaded at runtime over HTTP.",
    "vLLM serves an OpenAI compatible API for completions and chat.",
    "Hello world! This is a tiny random model used only for testing.",
)
LONG = " ".join(SENTENCES * 3) + " Kubernetes controllers"
"""182 tokens with the lane's tokenizer: five full blocks of 32 are cached."""
TOKENS = 16


@pytest.fixture(scope="module")
def engine() -> Iterator[VllmServer]:
    lane = Lane()
    if (problem := lane.problem()) is not None:
        pytest.fail(problem, pytrace=False)
    server = VllmServer(POD_IP, 8000, lane=lane, dev_mode=True, block_size=32, prompt_tokens_details=True)
    try:
        server.start()
    except RuntimeError as error:
        pytest.fail(f"the real vLLM did not start: {error}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


async def complete(server: VllmServer, model: str) -> tuple[str, int]:
    """The greedy answer to the long prompt, and how many of its tokens came from the prefix cache."""
    body = {"model": model, "prompt": LONG, "max_tokens": TOKENS, "temperature": 0}
    async with httpx.AsyncClient(timeout=120) as http:
        answer = await http.post(f"{server.base_url}/v1/completions", json=body)
    assert answer.status_code == 200, answer.text
    document = answer.json()
    cached = ((document.get("usage") or {}).get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return document["choices"][0]["text"], int(cached)


async def fresh(server: VllmServer, name: str, path: Path) -> str:
    """The answer of an adapter loaded once from `path` under a name never used before."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as http:
        loaded = await http.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(path)})
        assert loaded.status_code == 200, loaded.text
        try:
            text, _ = await complete(server, name)
        finally:
            await http.post("/v1/unload_lora_adapter", json={"lora_name": name})
    return text


def copy_of(lane: Lane, adapter: str, into: Path) -> Path:
    return Path(shutil.copytree(lane.adapter(adapter), into))


async def updated(sandbox: Sandbox, name: str) -> bool:
    conditions = (await sandbox.status(name)).get("conditions") or []
    return any(c.get("type") == "Progressing" and c.get("reason") == "UpdateComplete" for c in conditions)


async def _pod(sandbox: Sandbox, name: str, containers: list[Raw] | None = None) -> None:
    await sandbox.kubelet.create_pod(
        name,
        "default",
        labels=dict(POD_LABELS),
        ip=POD_IP,
        containers=containers,
        since=datetime.now(UTC) - timedelta(minutes=5),
    )


async def test_an_update_to_a_new_path_answers_with_the_new_weights(
    sandbox: Sandbox, engine: VllmServer, tmp_path: Path
) -> None:
    lane = engine.lane
    old_path, new_path = copy_of(lane, "lora-a", tmp_path / "v1"), copy_of(lane, "lora-b", tmp_path / "v2")
    await _pod(sandbox, "real-vllm-0")
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest("upd-direct", artifactURL=str(old_path)))
    await sandbox.phase("Running", "upd-direct", timeout=60)
    before, _ = await complete(engine, "upd-direct")
    _, cached = await complete(engine, "upd-direct")
    assert cached > 0, "the long prompt is in the prefix cache before the update"

    await sandbox.apply(adapter_manifest("upd-direct", artifactURL=str(new_path)))
    await sandbox.eventually(lambda: updated(sandbox, "upd-direct"), timeout=60, what="the update")
    after, cached_after = await complete(engine, "upd-direct")
    expected = await fresh(engine, "fresh-direct", new_path)
    print(
        f"\nnew path: before {before!r}\n          after  {after!r} (cached {cached_after})\n          fresh  {expected!r}"
    )
    assert after == expected, "the updated adapter answers as a fresh load of the new artifact"
    assert after != before, "and not as the old version"


async def test_an_update_into_the_same_folder_behind_the_runtime_answers_with_the_new_weights(
    sandbox: Sandbox, engine: VllmServer, tmp_path: Path
) -> None:
    lane = engine.lane
    v1, v2 = "s3://adapters/upd-runtime/v1/", "s3://adapters/upd-runtime/v2/"
    sidecar = SimulatedRuntimeSidecar(
        engine.base_url,
        host=POD_IP,
        artifacts={v1: lane.adapter("lora-a"), v2: lane.adapter("lora-b")},
        downloads=tmp_path / "aibrix-adapters",
    )
    await sidecar.start()
    try:
        containers: list[Raw] = [
            {"name": "vllm-openai", "image": "vllm/vllm-openai:v0.32.0", "ports": [{"containerPort": 8000}]},
            {"name": "aibrix-runtime", "image": "aibrix/runtime:v0.8.0", "ports": [{"containerPort": 8080}]},
        ]
        await _pod(sandbox, "real-vllm-runtime-0", containers)
        await sandbox.start_operator(replace(FAST, runtime_sidecar=True))
        await sandbox.apply(adapter_manifest("upd-runtime", artifactURL=v1))
        await sandbox.phase("Running", "upd-runtime", timeout=60)
        folder = sidecar.folder("upd-runtime")
        before, _ = await complete(engine, "upd-runtime")
        _, cached = await complete(engine, "upd-runtime")
        assert cached > 0, "the long prompt is in the prefix cache before the update"

        await sandbox.apply(adapter_manifest("upd-runtime", artifactURL=v2))
        await sandbox.eventually(lambda: updated(sandbox, "upd-runtime"), timeout=60, what="the update")
        async with httpx.AsyncClient(timeout=30) as http:
            models = (await http.get(f"{engine.base_url}/v1/models")).json()["data"]
        assert {m["id"]: m["root"] for m in models}["upd-runtime"] == str(folder), "the same path, new contents"
        after, cached_after = await complete(engine, "upd-runtime")
        expected = await fresh(engine, "fresh-runtime", lane.adapter("lora-b"))
        print(
            f"\nsame path: before {before!r}\n           after  {after!r} (cached {cached_after})\n"
            f"           fresh  {expected!r}"
        )
        assert cached_after == 0, "no block computed with the old weights answered"
        assert after == expected, "the updated adapter answers as a fresh load of the new artifact"
        assert after != before, "and not as the old version"
    finally:
        await sidecar.stop()
