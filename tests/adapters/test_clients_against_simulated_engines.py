"""The clients' behaviour against simulated engines that answer like vLLM 0.32, SGLang and the AIBrix runtime:
load, verify, reload, unload, and every failure landing in its kind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from modeladapter.adapters.base import LoadRequest
from modeladapter.adapters.connections import EngineConnections
from modeladapter.adapters.outcomes import (
    AlreadyLoadedWithOtherPath,
    ArtifactNotFound,
    EngineRejected,
    EngineTimeout,
    EngineUnavailable,
    IncompatibleAdapter,
    InvalidRequest,
    LoadOutcome,
    Unauthorized,
    UnloadOutcome,
    Unsupported,
    Verification,
)
from modeladapter.adapters.selection import EngineKind, EngineTarget
from modeladapter.sandbox.engine import Fault, Route, SimulatedEngine, write_peft_adapter
from modeladapter.sandbox.engine.runtime import SimulatedRuntimeSidecar
from tests.adapters.conftest import Adapters, ClientFactory


class TestVllmLifecycle:
    async def test_load_verify_complete_unload(
        self, vllm: SimulatedEngine, client_for: ClientFactory, adapters: Adapters
    ) -> None:
        client = client_for(vllm)
        loaded = await client.load(LoadRequest("sql-lora", adapters.a))
        assert loaded.outcome is LoadOutcome.LOADED
        assert loaded.engine_message == "Success: LoRA adapter 'sql-lora' added successfully."
        assert await client.verify("sql-lora", adapters.a) is Verification.LOADED
        served = (await client.list_models()).find("sql-lora")
        assert served is not None and (served.root, served.parent) == (adapters.a, "tiny")
        completion = await client.complete("sql-lora", "Hello world")
        assert completion.model == "sql-lora" and completion.text
        assert (await client.unload("sql-lora")).outcome is UnloadOutcome.UNLOADED
        assert await client.verify("sql-lora", adapters.a) is Verification.MISSING
        assert vllm.adapters == {}

    async def test_loading_twice_from_the_same_path_is_success(
        self, vllm: SimulatedEngine, client_for: ClientFactory, adapters: Adapters
    ) -> None:
        client = client_for(vllm)
        await client.load(LoadRequest("sql-lora", adapters.a))
        again = await client.load(LoadRequest("sql-lora", adapters.a + "/"))
        assert again.outcome is LoadOutcome.ALREADY_LOADED

    async def test_the_same_name_from_another_path_is_refused_until_replaced(
        self, vllm: SimulatedEngine, client_for: ClientFactory, adapters: Adapters
    ) -> None:
        client = client_for(vllm)
        await client.load(LoadRequest("sql-lora", adapters.a))
        with pytest.raises(AlreadyLoadedWithOtherPath) as raised:
            await client.load(LoadRequest("sql-lora", adapters.b))
        assert raised.value.loaded_path == adapters.a and raised.value.status == 400
        assert await client.verify("sql-lora", adapters.b) is Verification.OTHER_PATH
        replaced = await client.load(LoadRequest("sql-lora", adapters.b), replace=True)
        assert replaced.outcome is LoadOutcome.LOADED
        assert await client.verify("sql-lora", adapters.b) is Verification.LOADED
        assert vllm.adapters["sql-lora"].path == adapters.b

    async def test_unloading_an_unknown_adapter_counts_as_unloaded(
        self, vllm: SimulatedEngine, client_for: ClientFactory
    ) -> None:
        assert (await client_for(vllm).unload("never-loaded")).outcome is UnloadOutcome.NOT_LOADED

    async def test_a_completion_for_an_unknown_model_is_not_found(
        self, vllm: SimulatedEngine, client_for: ClientFactory
    ) -> None:
        with pytest.raises(InvalidRequest, match="does not exist. Valid aliases: tiny"):
            await client_for(vllm).complete("nope", "Hello")


class TestVllmRefusals:
    @pytest.mark.parametrize(
        ("path_of", "expected", "words"),
        [
            (lambda a: a.missing, ArtifactNotFound, "No adapter found"),
            (lambda a: a.not_an_adapter, ArtifactNotFound, "No adapter found"),
            (lambda a: a.rank16, IncompatibleAdapter, "LoRA rank 16 is greater than max_lora_rank 8."),
            (lambda a: a.bias, IncompatibleAdapter, "Adapter bias is not supported."),
        ],
        ids=["missing-path", "no-adapter-config", "rank-too-high", "bias"],
    )
    async def test_what_the_engine_says_about_the_adapter_is_final(
        self, vllm: SimulatedEngine, client_for: ClientFactory, adapters: Adapters,
        path_of: object, expected: type[Exception], words: str,
    ) -> None:  # fmt: skip
        assert callable(path_of)
        with pytest.raises(expected) as raised:
            await client_for(vllm).load(LoadRequest("sql-lora", path_of(adapters)))
        assert words in str(raised.value)
        assert raised.value.retriable is False
        assert vllm.adapters == {}

    async def test_a_hub_repository_the_offline_engine_cannot_fetch_is_not_found(
        self, vllm: SimulatedEngine, client_for: ClientFactory
    ) -> None:
        with pytest.raises(ArtifactNotFound, match="No adapter found for org/repo"):
            await client_for(vllm).load(LoadRequest("sql-lora", "huggingface://org/repo"))

    async def test_a_hub_repository_the_engine_can_fetch_is_loaded_under_its_repo_id(
        self, client_for: ClientFactory, adapters: Adapters
    ) -> None:
        engine = await SimulatedEngine("127.0.0.1", 0, hub={"org/repo": adapters.a}).start()
        try:
            client = client_for(engine)
            await client.load(LoadRequest("sql-lora", "hf://org/repo"))
            assert await client.verify("sql-lora", "huggingface://org/repo") is Verification.LOADED
        finally:
            await engine.stop()

    async def test_the_base_model_name_cannot_be_an_adapter_name(
        self, vllm: SimulatedEngine, client_for: ClientFactory, adapters: Adapters
    ) -> None:
        with pytest.raises(InvalidRequest, match="conflicts with a served base model"):
            await client_for(vllm).load(LoadRequest("tiny", adapters.a))

    async def test_an_adapter_for_another_base_model_is_incompatible(
        self, vllm: SimulatedEngine, client_for: ClientFactory, adapters: Adapters
    ) -> None:
        with pytest.raises(IncompatibleAdapter, match="base model 'llama2-7b' is not served"):
            await client_for(vllm).load(LoadRequest("sql-lora", adapters.a, base_model="llama2-7b"))
        assert vllm.calls[-1].path == "/v1/models"  # refused before any load was sent

    @pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 254])
    async def test_a_bad_name_never_reaches_the_engine(
        self, vllm: SimulatedEngine, client_for: ClientFactory, adapters: Adapters, name: str
    ) -> None:
        with pytest.raises(InvalidRequest):
            await client_for(vllm).load(LoadRequest(name, adapters.a))
        assert vllm.calls == []

    async def test_a_bucket_url_without_the_sidecar_never_reaches_the_engine(
        self, vllm: SimulatedEngine, client_for: ClientFactory
    ) -> None:
        with pytest.raises(Unsupported):
            await client_for(vllm).load(LoadRequest("sql-lora", "s3://bucket/sql"))
        assert vllm.calls == []


class TestApiKeys:
    async def test_the_right_key_is_let_through(
        self, keyed_vllm: SimulatedEngine, client_for: ClientFactory, adapters: Adapters
    ) -> None:
        client = client_for(keyed_vllm, api_key="s3cr3t-engine-key")
        await client.load(LoadRequest("sql-lora", adapters.a))
        assert await client.verify("sql-lora", adapters.a) is Verification.LOADED

    @pytest.mark.parametrize("key", [None, "wrong-key"])
    async def test_a_missing_or_wrong_key_is_unauthorized_and_not_retried(
        self, keyed_vllm: SimulatedEngine, client_for: ClientFactory, adapters: Adapters, key: str | None
    ) -> None:
        with pytest.raises(Unauthorized) as raised:
            await client_for(keyed_vllm, api_key=key).load(LoadRequest("sql-lora", adapters.a))
        assert raised.value.status == 401 and not raised.value.retriable


class TestFaults:
    @pytest.mark.parametrize("status", [502, 503, 504])
    async def test_an_unavailable_engine_is_retried_and_then_loads(
        self, vllm: SimulatedEngine, client_for: ClientFactory, adapters: Adapters, status: int
    ) -> None:
        vllm.inject(Fault(status=status), route="load")
        client = client_for(vllm)
        with pytest.raises(EngineUnavailable) as raised:
            await client.load(LoadRequest("sql-lora", adapters.a))
        assert raised.value.retriable and raised.value.status == status
        assert (await client.load(LoadRequest("sql-lora", adapters.a))).outcome is LoadOutcome.LOADED

    async def test_a_generic_500_is_rejected_without_retry(
        self, vllm: SimulatedEngine, client_for: ClientFactory, adapters: Adapters
    ) -> None:
        vllm.inject(Fault(status=500), route="load")
        with pytest.raises(EngineRejected) as raised:
            await client_for(vllm).load(LoadRequest("sql-lora", adapters.a))
        assert not raised.value.retriable

    async def test_a_refused_connection_is_unavailable(
        self, vllm: SimulatedEngine, client_for: ClientFactory, adapters: Adapters
    ) -> None:
        await vllm.refuse_connections()
        with pytest.raises(EngineUnavailable, match="ConnectError") as raised:
            await client_for(vllm).load(LoadRequest("sql-lora", adapters.a))
        assert raised.value.retriable

    async def test_a_dropped_connection_is_unavailable(
        self, vllm: SimulatedEngine, client_for: ClientFactory, adapters: Adapters
    ) -> None:
        vllm.inject(Fault(drop=True), route="load")
        with pytest.raises(EngineUnavailable, match="RemoteProtocolError"):
            await client_for(vllm).load(LoadRequest("sql-lora", adapters.a))

    async def test_an_engine_slower_than_the_limit_times_out(self, vllm: SimulatedEngine, adapters: Adapters) -> None:
        vllm.inject(Fault(delay=2.0), route="load")
        async with EngineConnections(total_timeout=0.2) as connections:
            client = connections.client(EngineTarget(EngineKind.VLLM, vllm.host, vllm.port))
            with pytest.raises(EngineTimeout) as raised:
                await client.load(LoadRequest("sql-lora", adapters.a))
        assert raised.value.retriable

    async def test_a_listing_has_a_shorter_limit_than_a_load(self, vllm: SimulatedEngine, adapters: Adapters) -> None:
        """A load may take the whole call limit; `/v1/models` is a lookup, so a slow one is an engine in trouble."""
        vllm.inject(Fault(delay=0.6), route="models", times=None)
        vllm.inject(Fault(delay=0.6), route="load")
        async with EngineConnections(total_timeout=2.0, list_timeout=0.3) as connections:
            client = connections.client(EngineTarget(EngineKind.VLLM, vllm.host, vllm.port))
            assert (await client.load(LoadRequest("sql-lora", adapters.a))).outcome is LoadOutcome.LOADED
            with pytest.raises(EngineTimeout) as raised:
                await client.list_models()
        assert raised.value.retriable

    async def test_after_a_restart_verification_finds_the_adapter_missing(
        self, vllm: SimulatedEngine, client_for: ClientFactory, adapters: Adapters
    ) -> None:
        client = client_for(vllm)
        await client.load(LoadRequest("sql-lora", adapters.a))
        await vllm.restart()
        assert await client.verify("sql-lora", adapters.a) is Verification.MISSING

    async def test_an_adapter_another_client_unloaded_is_missing(
        self, vllm: SimulatedEngine, client_for: ClientFactory, adapters: Adapters
    ) -> None:
        client = client_for(vllm)
        await client.load(LoadRequest("sql-lora", adapters.a))
        assert vllm.unload_by_another_client("sql-lora")
        assert await client.verify("sql-lora", adapters.a) is Verification.MISSING

    async def test_an_evicted_adapter_is_still_loaded_as_far_as_verification_can_tell(
        self, vllm: SimulatedEngine, client_for: ClientFactory, adapters: Adapters
    ) -> None:
        """vLLM lists registration, not residency: an LRU eviction is invisible to `/v1/models`, and the next
        request reads the adapter back, so there is nothing to repair."""
        client = client_for(vllm)
        await client.load(LoadRequest("sql-lora", adapters.a))
        assert vllm.evict("sql-lora")
        assert await client.verify("sql-lora", adapters.a) is Verification.LOADED

    async def test_a_full_engine_rejects_the_load_without_retry(
        self, client_for: ClientFactory, adapters: Adapters
    ) -> None:
        engine = await SimulatedEngine("127.0.0.1", 0, max_adapters=1).start()
        try:
            client = client_for(engine)
            await client.load(LoadRequest("first", adapters.a))
            with pytest.raises(EngineRejected, match="No free LoRA slot") as raised:
                await client.load(LoadRequest("second", adapters.b))
            assert not raised.value.retriable
        finally:
            await engine.stop()

    async def test_concurrent_loads_of_many_adapters_all_land(
        self, vllm: SimulatedEngine, client_for: ClientFactory, tmp_path: Path
    ) -> None:
        client = client_for(vllm)
        paths = [str(write_peft_adapter(tmp_path / f"a{i}")) for i in range(12)]
        results = await asyncio.gather(*(client.load(LoadRequest(f"a{i}", p)) for i, p in enumerate(paths)))
        assert {r.outcome for r in results} == {LoadOutcome.LOADED}
        assert sorted(vllm.adapters) == sorted(f"a{i}" for i in range(12))


class TestSglang:
    async def test_load_verify_unload(
        self, sglang: SimulatedEngine, client_for: ClientFactory, adapters: Adapters
    ) -> None:
        client = client_for(sglang)
        assert (await client.load(LoadRequest("sql-lora", adapters.a))).outcome is LoadOutcome.LOADED
        assert (await client.load(LoadRequest("sql-lora", adapters.a))).outcome is LoadOutcome.ALREADY_LOADED
        assert await client.verify("sql-lora", adapters.a) is Verification.LOADED
        assert (await client.unload("sql-lora")).outcome is UnloadOutcome.UNLOADED
        assert (await client.unload("sql-lora")).outcome is UnloadOutcome.NOT_LOADED

    async def test_refusals(self, sglang: SimulatedEngine, client_for: ClientFactory, adapters: Adapters) -> None:
        client = client_for(sglang)
        with pytest.raises(ArtifactNotFound):
            await client.load(LoadRequest("x", adapters.missing))
        with pytest.raises(IncompatibleAdapter, match="rank 16 is incompatible"):
            await client.load(LoadRequest("y", adapters.rank16))
        await client.load(LoadRequest("z", adapters.a))
        with pytest.raises(AlreadyLoadedWithOtherPath):
            await client.load(LoadRequest("z", adapters.b))
        assert (await client.load(LoadRequest("z", adapters.b), replace=True)).outcome is LoadOutcome.LOADED
        assert sglang.adapters["z"].path == adapters.b


class TestRuntimeSidecar:
    async def test_the_sidecar_downloads_with_credentials_then_the_engine_serves_it(
        self, vllm: SimulatedEngine, connections: EngineConnections, adapters: Adapters
    ) -> None:
        url = "s3://models/sql-lora/"
        sidecar = SimulatedRuntimeSidecar(vllm, port=0, artifacts={url: adapters.a},
                                          required_credentials={url: {"aws_access_key_id": "AKIA"}})  # fmt: skip
        await sidecar.start()
        try:
            client = connections.client(EngineTarget(EngineKind.RUNTIME, sidecar.host, sidecar.port))
            with pytest.raises(Unauthorized, match="Permission denied"):
                await client.load(LoadRequest("sql-lora", url))
            request = LoadRequest("sql-lora", url, credentials={"aws_access_key_id": "AKIA"})
            assert (await client.load(request)).outcome is LoadOutcome.LOADED
            assert vllm.adapters["sql-lora"].path == str(sidecar.folder("sql-lora"))
            assert await client.verify("sql-lora", url) is Verification.LOADED
            assert (await client.load(request)).outcome is LoadOutcome.ALREADY_LOADED
            assert (await client.unload("sql-lora")).outcome is UnloadOutcome.UNLOADED
            assert vllm.adapters == {}
            assert sidecar.received[-1] == {"lora_name": "sql-lora", "cleanup_local": True}
        finally:
            await sidecar.stop()

    async def test_an_unload_counts_only_once_the_engine_stops_listing_the_adapter(
        self, vllm: SimulatedEngine, connections: EngineConnections, adapters: Adapters
    ) -> None:
        # Over HTTP, so that a fault on the engine's unload route reaches the sidecar, which answers 200 anyway.
        url = "s3://models/sql-lora/"
        sidecar = SimulatedRuntimeSidecar(vllm.base_url, port=0, artifacts={url: adapters.a})
        await sidecar.start()
        try:
            client = connections.client(EngineTarget(EngineKind.RUNTIME, sidecar.host, sidecar.port))
            await client.load(LoadRequest("sql-lora", url))
            vllm.inject(Fault(status=500), route=Route.UNLOAD)
            with pytest.raises(EngineUnavailable, match="still lists it") as raised:
                await client.unload("sql-lora")
            assert raised.value.retriable and "sql-lora" in vllm.adapters
            assert (await client.unload("sql-lora")).outcome is UnloadOutcome.UNLOADED
            assert (await client.unload("sql-lora")).outcome is UnloadOutcome.NOT_LOADED, "the sidecar's 200 aside"
        finally:
            await sidecar.stop()

    async def test_what_the_sidecar_cannot_find_or_the_engine_refuses_is_final(
        self, vllm: SimulatedEngine, connections: EngineConnections, adapters: Adapters
    ) -> None:
        sidecar = SimulatedRuntimeSidecar(vllm, port=0, artifacts={"gcs://m/r16": adapters.rank16})
        await sidecar.start()
        try:
            client = connections.client(EngineTarget(EngineKind.RUNTIME, sidecar.host, sidecar.port))
            with pytest.raises(ArtifactNotFound, match="Artifact not found"):
                await client.load(LoadRequest("a", "s3://m/none"))
            with pytest.raises(IncompatibleAdapter, match="Engine error"):
                await client.load(LoadRequest("b", "gs://m/r16"))  # sent as gcs://
            with pytest.raises(Unsupported, match="Unsupported URL scheme"):
                await client.load(LoadRequest("c", adapters.a))  # the sidecar downloads, it cannot read paths
        finally:
            await sidecar.stop()
