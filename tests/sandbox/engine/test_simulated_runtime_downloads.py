"""The simulated AIBrix runtime downloads like aibrix 0.8.0's: every version of adapter `<name>` into one folder,
`<downloads>/<name>`, which the engine loads and lists as `root`; a complete folder is not downloaded again; an
unload with `cleanup_local` deletes it. And it fronts either an in-process engine or a vLLM over HTTP."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from modeladapter.adapters.base import LoadRequest
from modeladapter.adapters.connections import EngineConnections
from modeladapter.adapters.outcomes import LoadOutcome, Unauthorized, UnloadOutcome, Verification
from modeladapter.adapters.selection import EngineKind, EngineTarget
from modeladapter.sandbox.engine import SimulatedEngine, SimulatedRuntimeSidecar, write_peft_adapter
from modeladapter.sandbox.engine.runtime import DOWNLOAD_COMPLETE_MARKER

V1, V2 = "s3://models/sql-lora/v1/", "s3://models/sql-lora/v2/"
LONG = " ".join(f"w{i}" for i in range(200))
KEY = "engine-key"


@pytest.fixture
def versions(tmp_path: Path) -> dict[str, Path]:
    return {V1: write_peft_adapter(tmp_path / "bucket" / "v1", weights=b"v1"),
            V2: write_peft_adapter(tmp_path / "bucket" / "v2", weights=b"v2")}  # fmt: skip


@pytest.fixture
async def sidecar(engine: SimulatedEngine, versions: dict[str, Path]) -> AsyncIterator[SimulatedRuntimeSidecar]:
    started = await SimulatedRuntimeSidecar(engine, port=0, artifacts=versions).start()
    yield started
    await started.stop()


@pytest.fixture
async def runtime(sidecar: SimulatedRuntimeSidecar) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sidecar.base_url, timeout=5) as client:
        yield client


async def load(runtime: httpx.AsyncClient, url: str, name: str = "sql-lora") -> httpx.Response:
    return await runtime.post("/v1/lora_adapter/load", json={"lora_name": name, "artifact_url": url})


async def unload(runtime: httpx.AsyncClient, name: str = "sql-lora", **extra: object) -> httpx.Response:
    return await runtime.post("/v1/lora_adapter/unload", json={"lora_name": name, **extra})


def text(engine: SimulatedEngine, prompt: str = LONG) -> str:
    return str(json.loads(engine.complete("sql-lora", prompt, 8).body)["choices"][0]["text"])


async def test_every_version_is_loaded_from_the_one_folder_of_its_name(
    runtime: httpx.AsyncClient, sidecar: SimulatedRuntimeSidecar, engine: SimulatedEngine
) -> None:
    folder = str(sidecar.folder("sql-lora"))
    for url in (V1, V2):
        answer = await load(runtime, url)
        assert answer.status_code == 200 and answer.json()["local_path"] == folder
        cards = (await runtime.get("/v1/models")).json()["data"]
        assert [(c["id"], c["root"]) for c in cards if c["id"] == "sql-lora"] == [("sql-lora", folder)]
        assert (await unload(runtime)).status_code == 200
    assert sidecar.downloaded == [V1, V2]
    assert not Path(folder).exists(), "cleanup_local (the default) deletes the folder"


async def test_the_update_is_stale_at_the_same_folder_until_the_prefix_cache_is_reset(
    runtime: httpx.AsyncClient, engine: SimulatedEngine
) -> None:
    await load(runtime, V1)
    v1 = text(engine)
    await unload(runtime)
    await load(runtime, V2)
    assert text(engine) == v1
    assert text(engine, "Hello world") != v1
    engine.reset_prefix_cache()
    assert text(engine) != v1


async def test_a_complete_folder_is_not_downloaded_again_whatever_the_url(
    runtime: httpx.AsyncClient, sidecar: SimulatedRuntimeSidecar, engine: SimulatedEngine
) -> None:
    await load(runtime, V1)
    engine.reset_prefix_cache()
    v1 = text(engine)
    await unload(runtime, cleanup_local=False)
    assert (sidecar.folder("sql-lora") / DOWNLOAD_COMPLETE_MARKER).exists()
    assert (await load(runtime, V2)).status_code == 200
    engine.reset_prefix_cache()
    assert text(engine) == v1, "the old files were loaded for the new URL"
    assert sidecar.downloaded == [V1]
    await unload(runtime, cleanup_local=False)
    assert (await load(runtime, "s3://models/nowhere/")).status_code == 200, "not downloaded, so not missing"


async def test_names_that_could_leave_the_downloads_root_are_refused(
    runtime: httpx.AsyncClient, sidecar: SimulatedRuntimeSidecar
) -> None:
    answer = await load(runtime, V1, name="../escape")
    assert answer.status_code == 500
    assert answer.json() == {
        "error": "Failed to load adapter: Invalid lora_name: must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
    }
    assert sidecar.downloaded == [] and not (sidecar.downloads.parent / "escape").exists()
    failed = await unload(runtime, name="../escape")
    assert (failed.status_code, failed.text) == (500, "Internal Server Error")


async def test_an_object_store_folder_needs_its_trailing_slash_as_in_the_real_runtime(
    runtime: httpx.AsyncClient, sidecar: SimulatedRuntimeSidecar
) -> None:
    one_object = await load(runtime, V1.rstrip("/"))
    assert (one_object.status_code, one_object.json()) == (
        500,
        {"error": "Artifact not found: S3 object not found: s3://models/sql-lora/v1"},
    )
    empty = await load(runtime, "s3://models/nowhere/")
    assert empty.json() == {"error": "Artifact not found: No objects found under S3 prefix: s3://models/nowhere/"}
    assert sidecar.downloaded == []
    assert (await load(runtime, V1)).status_code == 200


async def test_artifacts_registered_without_the_slash_are_folders_too(
    engine: SimulatedEngine, versions: dict[str, Path]
) -> None:
    sidecar = await SimulatedRuntimeSidecar(engine, port=0, artifacts={V1.rstrip("/"): versions[V1]}).start()
    try:
        async with httpx.AsyncClient(base_url=sidecar.base_url) as runtime:
            assert (await load(runtime, V1)).status_code == 200
    finally:
        await sidecar.stop()


async def test_a_name_the_runtimes_vllm_client_refuses_is_downloaded_first_and_left_behind(
    runtime: httpx.AsyncClient, sidecar: SimulatedRuntimeSidecar, engine: SimulatedEngine
) -> None:
    answer = await load(runtime, V1, name="sql.lora")
    assert (answer.status_code, answer.json()) == (
        500,
        {"error": "Engine error: LoRA name must contain only alphanumeric characters, hyphens, and underscores"},
    )
    assert sidecar.downloaded == [V1] and (sidecar.folder("sql.lora") / DOWNLOAD_COMPLETE_MARKER).exists()
    assert engine.adapters == {}
    too_long = await load(runtime, V2, name="a" * 101)
    assert too_long.json() == {"error": "Engine error: LoRA name too long (max 100 characters)"}


async def test_an_unload_answers_200_whatever_the_engine_said(versions: dict[str, Path]) -> None:
    remote = await SimulatedEngine("127.0.0.1", 0).start()
    sidecar = await SimulatedRuntimeSidecar(remote.base_url, port=0, artifacts=versions).start()
    try:
        async with httpx.AsyncClient(base_url=sidecar.base_url) as runtime:
            answer = await unload(runtime, name="never-loaded")
        assert answer.status_code == 200 and answer.json()["status"] == "success"
        assert [(c.path, c.status) for c in remote.calls] == [("/v1/unload_lora_adapter", 404)]
    finally:
        await sidecar.stop()
        await remote.stop()


async def test_sidecars_sharing_a_downloads_root_share_downloads_and_cleanup(
    engine: SimulatedEngine, versions: dict[str, Path], tmp_path: Path
) -> None:
    # Every real runtime on one machine downloads into /tmp/aibrix/adapters: the second finds the first's files.
    other = SimulatedEngine("127.0.0.1", 0)
    root = tmp_path / "shared"
    first = await SimulatedRuntimeSidecar(engine, port=0, artifacts=versions, downloads=root).start()
    second = await SimulatedRuntimeSidecar(other, port=0, artifacts=versions, downloads=root).start()
    try:
        async with httpx.AsyncClient() as http:
            for sidecar in (first, second):
                loaded = await http.post(f"{sidecar.base_url}/v1/lora_adapter/load",
                                         json={"lora_name": "sql-lora", "artifact_url": V1})  # fmt: skip
                assert loaded.status_code == 200
            assert (first.downloaded, second.downloaded) == ([V1], [])
            await http.post(f"{first.base_url}/v1/lora_adapter/unload", json={"lora_name": "sql-lora"})
            assert not (root / "sql-lora").exists(), "gone for the second sidecar too"
            assert other.adapters["sql-lora"].path == str(root / "sql-lora")
    finally:
        await first.stop()
        await second.stop()


async def test_a_downloads_root_given_is_used_and_kept(
    engine: SimulatedEngine, versions: dict[str, Path], tmp_path: Path
) -> None:
    root = tmp_path / "tmp-aibrix-adapters"
    sidecar = await SimulatedRuntimeSidecar(engine, port=0, artifacts=versions, downloads=root).start()
    async with httpx.AsyncClient(base_url=sidecar.base_url) as runtime:
        await load(runtime, V1)
    await sidecar.stop()
    assert engine.adapters["sql-lora"].path == str(root / "sql-lora") and (root / "sql-lora").is_dir()
    default = SimulatedRuntimeSidecar(engine, port=0)
    await default.stop()
    assert not default.downloads.exists()


async def test_the_operator_client_loads_verifies_and_unloads_through_it(
    engine: SimulatedEngine, versions: dict[str, Path]
) -> None:
    sidecar = SimulatedRuntimeSidecar(engine, port=0, artifacts=versions,
                                      required_credentials={V1: {"aws_access_key_id": "AKIA"}})  # fmt: skip
    await sidecar.start()
    try:
        async with EngineConnections() as connections:
            client = connections.client(EngineTarget(EngineKind.RUNTIME, sidecar.host, sidecar.port))
            with pytest.raises(Unauthorized, match="Permission denied"):
                await client.load(LoadRequest("sql-lora", V1))
            request = LoadRequest("sql-lora", V1, credentials={"aws_access_key_id": "AKIA"})
            assert (await client.load(request)).outcome is LoadOutcome.LOADED
            assert engine.adapters["sql-lora"].path == str(sidecar.folder("sql-lora"))
            assert await client.verify("sql-lora", V1) is Verification.LOADED
            assert (await client.load(LoadRequest("sql-lora", V2), replace=True)).outcome is LoadOutcome.LOADED
            assert sidecar.downloaded == [V1, V2]
            assert (await client.unload("sql-lora")).outcome is UnloadOutcome.UNLOADED
            assert engine.adapters == {} and not sidecar.folder("sql-lora").exists()
    finally:
        await sidecar.stop()


class TestInFrontOfAnEngineOverHttp:
    @pytest.fixture
    async def remote(self) -> AsyncIterator[SimulatedEngine]:
        engine = await SimulatedEngine("127.0.0.1", 0, api_key=KEY, max_lora_rank=8).start()
        yield engine
        await engine.stop()

    async def test_loads_unloads_and_lists_go_to_the_engine_with_its_key(
        self, remote: SimulatedEngine, versions: dict[str, Path]
    ) -> None:
        sidecar = SimulatedRuntimeSidecar(remote.base_url, engine_api_key=KEY, port=0, artifacts=versions)
        assert sidecar.engine is None and sidecar.host == "127.0.0.1"
        await sidecar.start()
        try:
            async with httpx.AsyncClient(base_url=sidecar.base_url) as runtime:
                loaded = await load(runtime, V1)
                assert loaded.status_code == 200
                assert loaded.json()["engine_response"] == {
                    "message": "Success: LoRA adapter 'sql-lora' added successfully."
                }
                assert remote.adapters["sql-lora"].path == str(sidecar.folder("sql-lora"))
                models = await runtime.get("/v1/models")
                assert [c["id"] for c in models.json()["data"]] == ["tiny", "sql-lora"]
                again = await load(runtime, V1)
                assert again.status_code == 500 and "has already been loaded" in again.json()["error"]
                assert (await unload(runtime)).status_code == 200 and remote.adapters == {}
            assert [(c.method, c.path, c.status) for c in remote.calls] == [
                ("POST", "/v1/load_lora_adapter", 200),
                ("GET", "/v1/models", 200),
                ("POST", "/v1/load_lora_adapter", 400),
                ("POST", "/v1/unload_lora_adapter", 200),
            ]
        finally:
            await sidecar.stop()

    async def test_a_wrong_key_and_an_unreachable_engine_are_engine_errors(
        self, remote: SimulatedEngine, versions: dict[str, Path]
    ) -> None:
        wrong = await SimulatedRuntimeSidecar(remote.base_url, engine_api_key="wrong", port=0,
                                              artifacts=versions).start()  # fmt: skip
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed_port = probe.getsockname()[1]
        nowhere = await SimulatedRuntimeSidecar(f"http://127.0.0.1:{closed_port}", port=0, artifacts=versions).start()
        try:
            async with httpx.AsyncClient() as http:
                refused = await http.post(f"{wrong.base_url}/v1/lora_adapter/load",
                                          json={"lora_name": "sql-lora", "artifact_url": V1})  # fmt: skip
                assert (refused.status_code, refused.json()) == (
                    500,
                    {"error": 'Engine error: {"error":"Unauthorized"}'},
                )
                listed = await http.get(f"{wrong.base_url}/v1/models")
                assert listed.status_code == 401
                assert listed.json()["message"] == 'Failed to list models: {"error":"Unauthorized"}'
                unreachable = await http.post(f"{nowhere.base_url}/v1/lora_adapter/load",
                                              json={"lora_name": "sql-lora", "artifact_url": V1})  # fmt: skip
                assert unreachable.json() == {
                    "error": "Engine error: Cannot connect to inference engine for LoRA adapter 'sql-lora'"
                }
                down = await http.get(f"{nowhere.base_url}/v1/models")
                assert (down.status_code, down.json()["type"]) == (502, "ConnectionError")
        finally:
            await wrong.stop()
            await nowhere.stop()
