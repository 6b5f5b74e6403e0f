"""What each client puts on the wire, pinned with `httpx.MockTransport`: methods, paths, JSON bodies, the
Bearer header, the time limits and the per-pod concurrency bound."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import httpx
import pytest

from modeladapter.adapters.base import LoadRequest
from modeladapter.adapters.connections import ApiKey, EngineConnections, create_http_client
from modeladapter.adapters.outcomes import (
    AlreadyLoadedWithOtherPath,
    EngineTimeout,
    EngineUnavailable,
    InvalidRequest,
    LoadOutcome,
    UnloadOutcome,
    Unsupported,
)
from modeladapter.adapters.selection import EngineKind, EngineTarget
from modeladapter.adapters.vllm import VllmClient

VLLM = EngineTarget(EngineKind.VLLM, "10.0.0.7", 8000)
SGLANG = EngineTarget(EngineKind.SGLANG, "10.0.0.8", 30000)
RUNTIME = EngineTarget(EngineKind.RUNTIME, "10.0.0.9", 8080)
MODELS = {"object": "list", "data": [{"id": "llama", "root": "/models/llama", "parent": None}]}

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


class Recorder:
    """A MockTransport handler that records every request and answers from a script of responses."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.requests: list[httpx.Request] = []
        self.answers = list(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.pop(0) if self.answers else httpx.Response(200, text="ok")

    def bodies(self) -> list[object]:
        return [json.loads(r.content) if r.content else None for r in self.requests]

    def lines(self) -> list[str]:
        return [f"{r.method} {r.url}" for r in self.requests]


def connections_over(handler: Handler, **options: float | int) -> EngineConnections:
    return EngineConnections(http=httpx.AsyncClient(transport=httpx.MockTransport(handler)), **options)  # type: ignore[arg-type]


class TestVllm:
    async def test_load_posts_name_and_translated_path_as_json_with_the_bearer_key(self) -> None:
        wire = Recorder(httpx.Response(200, text="Success: LoRA adapter 'sql' added successfully."))
        client = connections_over(wire).client(VLLM, api_key="k-123")
        result = await client.load(LoadRequest("sql", "huggingface://yard1/sql-lora"))
        assert wire.lines() == ["POST http://10.0.0.7:8000/v1/load_lora_adapter"]
        assert wire.bodies() == [{"lora_name": "sql", "lora_path": "yard1/sql-lora"}]
        request = wire.requests[0]
        assert request.headers["authorization"] == "Bearer k-123"
        assert request.headers["content-type"] == "application/json"
        assert (result.outcome, result.lora_path) == (LoadOutcome.LOADED, "yard1/sql-lora")

    async def test_replace_unloads_then_loads_and_never_asks_vllm_to_load_in_place(self) -> None:
        wire = Recorder(httpx.Response(200, text="Success"), httpx.Response(200, text="Success"))
        await connections_over(wire).client(VLLM).load(LoadRequest("sql", "/m/sql-v2"), replace=True)
        assert wire.lines() == [
            "POST http://10.0.0.7:8000/v1/unload_lora_adapter",
            "POST http://10.0.0.7:8000/v1/load_lora_adapter",
        ]
        assert wire.bodies() == [{"lora_name": "sql"}, {"lora_name": "sql", "lora_path": "/m/sql-v2"}]

    @pytest.mark.parametrize(
        ("answers", "outcome"),
        [
            ([httpx.Response(200, json={"success": True})], None),
            ([httpx.Response(200, text="")], None),
            ([httpx.Response(200, json={"success": False}), httpx.Response(200, json={"success": True})], None),
            ([httpx.Response(200, json={"success": False})] * 2, EngineUnavailable),
            ([httpx.Response(404, json={"detail": "Not Found"})], Unsupported),
        ],
        ids=["reset", "reset-empty-answer", "busy-then-preempted", "still-busy", "no-dev-mode"],
    )
    async def test_a_prefix_cache_reset_preempts_running_requests_only_if_it_must(
        self, answers: list[httpx.Response], outcome: type[Exception] | None
    ) -> None:
        wire = Recorder(*answers)
        client = connections_over(wire).client(VLLM)
        assert isinstance(client, VllmClient)
        if outcome is None:
            await client.reset_prefix_cache()
        else:
            with pytest.raises(outcome) as raised:
                await client.reset_prefix_cache()
            if outcome is Unsupported:
                assert "VLLM_SERVER_DEV_MODE=1" in str(raised.value)
        assert (
            wire.lines()[:2]
            == [
                "POST http://10.0.0.7:8000/reset_prefix_cache",
                "POST http://10.0.0.7:8000/reset_prefix_cache?reset_running_requests=true",
            ][: len(answers)]
        )

    async def test_no_key_means_no_authorization_header(self) -> None:
        wire = Recorder(httpx.Response(200, json=MODELS))
        await connections_over(wire).client(VLLM).list_models()
        assert "authorization" not in wire.requests[0].headers

    async def test_already_loaded_is_checked_against_the_listed_root(self) -> None:
        duplicate = httpx.Response(400, json={"error": {"message": "The lora adapter 'sql' has already been loaded.",
                                                        "type": "InvalidUserInput", "param": None, "code": 400}})  # fmt: skip
        listed = {"object": "list", "data": [*MODELS["data"], {"id": "sql", "root": "/m/sql/", "parent": "llama"}]}
        wire = Recorder(duplicate, httpx.Response(200, json=listed))
        result = await connections_over(wire).client(VLLM).load(LoadRequest("sql", "/m/sql"))
        assert wire.lines() == ["POST http://10.0.0.7:8000/v1/load_lora_adapter", "GET http://10.0.0.7:8000/v1/models"]
        assert result.outcome is LoadOutcome.ALREADY_LOADED

    async def test_already_loaded_from_another_path_is_an_error_naming_both(self) -> None:
        duplicate = httpx.Response(400, json={"object": "error", "message": "The lora adapter 'sql' has already been "
                                              "loaded.", "type": "InvalidUserInput", "code": 400})  # fmt: skip
        listed = {"object": "list", "data": [{"id": "sql", "root": "/m/sql-v1", "parent": "llama"}]}
        wire = Recorder(duplicate, httpx.Response(200, json=listed))
        with pytest.raises(AlreadyLoadedWithOtherPath) as raised:
            await connections_over(wire).client(VLLM).load(LoadRequest("sql", "/m/sql-v2"))
        assert (raised.value.loaded_path, raised.value.wanted_path) == ("/m/sql-v1", "/m/sql-v2")
        assert not raised.value.retriable

    async def test_base_model_is_checked_before_loading(self) -> None:
        wire = Recorder(httpx.Response(200, json=MODELS), httpx.Response(200, text="Success"))
        await connections_over(wire).client(VLLM).load(LoadRequest("sql", "/m/sql", base_model="llama"))
        assert wire.lines() == ["GET http://10.0.0.7:8000/v1/models", "POST http://10.0.0.7:8000/v1/load_lora_adapter"]

    async def test_unload_posts_only_the_name(self) -> None:
        wire = Recorder(httpx.Response(200, text="Success: LoRA adapter 'sql' removed successfully."))
        result = await connections_over(wire).client(VLLM).unload("sql")
        assert wire.lines() == ["POST http://10.0.0.7:8000/v1/unload_lora_adapter"]
        assert wire.bodies() == [{"lora_name": "sql"}]
        assert result.outcome is UnloadOutcome.UNLOADED

    async def test_completions_are_greedy_openai_requests(self) -> None:
        answer = {"model": "sql", "choices": [{"text": " hi", "finish_reason": "length"}]}
        wire = Recorder(httpx.Response(200, json=answer))
        completion = await connections_over(wire).client(VLLM).complete("sql", "Hello", max_tokens=4)
        assert wire.bodies() == [{"model": "sql", "prompt": "Hello", "max_tokens": 4, "temperature": 0}]
        assert completion.text == " hi"


class TestSglang:
    async def test_load_and_unload_use_the_unversioned_paths(self) -> None:
        ok = {"success": True, "error_message": None, "loaded_adapters": {"sql": "/m/sql"}}
        wire = Recorder(httpx.Response(200, json=ok), httpx.Response(200, json=ok))
        client = connections_over(wire).client(SGLANG, api_key="k")
        await client.load(LoadRequest("sql", "/m/sql"))
        await client.unload("sql")
        assert wire.lines() == ["POST http://10.0.0.8:30000/load_lora_adapter",
                                "POST http://10.0.0.8:30000/unload_lora_adapter"]  # fmt: skip
        assert wire.bodies() == [{"lora_name": "sql", "lora_path": "/m/sql"}, {"lora_name": "sql"}]
        assert all(r.headers["authorization"] == "Bearer k" for r in wire.requests)

    async def test_already_loaded_is_judged_from_the_answer_itself(self) -> None:
        duplicate = {"success": False, "error_message": "Failed to load LoRA adapter sql because it is already loaded",
                     "loaded_adapters": {"sql": "/m/sql"}}  # fmt: skip
        wire = Recorder(httpx.Response(400, json=duplicate))
        result = await connections_over(wire).client(SGLANG).load(LoadRequest("sql", "/m/sql"))
        assert len(wire.requests) == 1 and result.outcome is LoadOutcome.ALREADY_LOADED


class TestRuntimeSidecar:
    async def test_load_checks_the_list_then_sends_the_artifact_url_credentials_and_config(self) -> None:
        wire = Recorder(httpx.Response(200, json=MODELS), httpx.Response(200, json={"status": "success"}))
        client = connections_over(wire).client(RUNTIME, api_key="k")
        request = LoadRequest("sql", "s3://bucket/sql/", credentials={"aws_access_key_id": "AKIA"},
                              additional_config={"region": "eu"})  # fmt: skip
        result = await client.load(request)
        assert wire.lines() == ["GET http://10.0.0.9:8080/v1/models", "POST http://10.0.0.9:8080/v1/lora_adapter/load"]
        assert wire.bodies()[1] == {"lora_name": "sql", "artifact_url": "s3://bucket/sql/",
                                    "credentials": {"aws_access_key_id": "AKIA"},
                                    "additional_config": {"region": "eu"}}  # fmt: skip
        assert result.outcome is LoadOutcome.LOADED

    async def test_empty_credentials_and_config_are_left_out(self) -> None:
        wire = Recorder(httpx.Response(200, json=MODELS), httpx.Response(200, json={"status": "success"}))
        await connections_over(wire).client(RUNTIME).load(LoadRequest("sql", "hf://org/sql"))
        assert wire.bodies()[1] == {"lora_name": "sql", "artifact_url": "huggingface://org/sql"}

    async def test_a_listed_adapter_is_not_downloaded_again(self) -> None:
        listed = {"object": "list", "data": [{"id": "sql", "root": "/tmp/aibrix/adapters/sql", "parent": "llama"}]}
        wire = Recorder(httpx.Response(200, json=listed))
        result = await connections_over(wire).client(RUNTIME).load(LoadRequest("sql", "s3://bucket/sql"))
        assert len(wire.requests) == 1 and result.outcome is LoadOutcome.ALREADY_LOADED

    async def test_unload_asks_the_sidecar_to_clean_up_local_files_and_checks_the_listing_around_it(self) -> None:
        listed = {"object": "list", "data": [{"id": "sql", "root": "/tmp/aibrix/adapters/sql", "parent": "llama"}]}
        wire = Recorder(httpx.Response(200, json=listed), httpx.Response(200, json={"status": "success"}),
                        httpx.Response(200, json=MODELS))  # fmt: skip
        result = await connections_over(wire).client(RUNTIME).unload("sql")
        assert wire.lines() == ["GET http://10.0.0.9:8080/v1/models", "POST http://10.0.0.9:8080/v1/lora_adapter/unload",
                                "GET http://10.0.0.9:8080/v1/models"]  # fmt: skip
        assert wire.bodies()[1] == {"lora_name": "sql", "cleanup_local": True}
        assert result.outcome is UnloadOutcome.UNLOADED

    def test_credentials_and_config_never_show_in_a_repr(self) -> None:
        request = LoadRequest("sql", "s3://b/k", credentials={"aws_secret_access_key": "SECRET"},
                              additional_config={"api-key": "KEY"})  # fmt: skip
        assert "SECRET" not in repr(request) and "KEY" not in repr(request)


class TestTimeLimits:
    def test_the_shared_client_connects_within_5_s_and_reads_within_30_s(self) -> None:
        timeout = create_http_client().timeout
        assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (5.0, 30.0, 30.0, 30.0)

    async def test_a_call_slower_than_the_total_limit_is_a_timeout(self) -> None:
        async def slow(request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(5)
            return httpx.Response(200, json=MODELS)

        client = connections_over(slow, total_timeout=0.1).client(VLLM)
        with pytest.raises(EngineTimeout) as raised:
            await client.list_models()
        assert raised.value.retriable and raised.value.status is None

    @pytest.mark.parametrize(
        ("exception", "expected"),
        [
            (httpx.ConnectTimeout("connect timed out"), EngineTimeout),
            (httpx.ReadTimeout("read timed out"), EngineTimeout),
            (httpx.ConnectError("[Errno 111] Connection refused"), EngineUnavailable),
            (httpx.RemoteProtocolError("Server disconnected without sending a response."), EngineUnavailable),
            (httpx.ReadError("Connection reset by peer"), EngineUnavailable),
        ],
        ids=lambda value: type(value).__name__ if isinstance(value, Exception) else value.__name__,
    )
    async def test_transport_failures_become_retriable_errors(
        self, exception: Exception, expected: type[Exception]
    ) -> None:
        def fail(request: httpx.Request) -> httpx.Response:
            raise exception

        with pytest.raises(expected) as raised:
            await connections_over(fail).client(VLLM).unload("sql")
        assert raised.value.retriable is True
        assert "unload" in str(raised.value) and "10.0.0.7:8000" in str(raised.value)


class TestConcurrency:
    async def test_calls_to_one_pod_are_bounded_and_other_pods_are_not_held_up(self) -> None:
        release = asyncio.Event()
        active: dict[str, int] = {}
        peak: dict[str, int] = {}

        async def hold(request: httpx.Request) -> httpx.Response:
            host = request.url.host
            active[host] = active.get(host, 0) + 1
            peak[host] = max(peak.get(host, 0), active[host])
            if host == VLLM.host:
                await release.wait()
            active[host] -= 1
            return httpx.Response(200, json=MODELS)

        connections = connections_over(hold, per_pod_concurrency=3)
        busy = [asyncio.create_task(connections.client(VLLM).list_models()) for _ in range(10)]
        await asyncio.sleep(0.05)
        assert connections.in_flight(VLLM) == 3
        other = EngineTarget(EngineKind.VLLM, "10.0.0.99", 8000)
        await asyncio.wait_for(connections.client(other).list_models(), timeout=1)  # not queued behind VLLM
        release.set()
        await asyncio.gather(*busy)
        assert peak[VLLM.host] == 3 and connections.in_flight(VLLM) == 0


def test_an_api_key_hides_its_value_and_rejects_nonsense() -> None:
    key = ApiKey("s3cr3t")
    assert "s3cr3t" not in repr(key) and "s3cr3t" not in str(key) and key.reveal() == "s3cr3t"
    for bad in ("", "  ", "a\nb"):
        with pytest.raises(InvalidRequest):
            ApiKey(bad)
