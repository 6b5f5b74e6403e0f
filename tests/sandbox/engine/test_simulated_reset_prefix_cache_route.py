"""`POST /reset_prefix_cache`, as vLLM 0.32 serves it: only in dev mode (`VLLM_SERVER_DEV_MODE=1`), outside
`--api-key`'s reach (it guards `/v1`, `/v2`, `/inference` and `/cohere` only), always a 200 `{"success": bool}`
that is false while running requests hold blocks, with the boolean query parameters `reset_running_requests`
(preempt them first) and `reset_external`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from modeladapter.sandbox.engine import Fault, SimulatedEngine, write_peft_adapter

RESET = "/reset_prefix_cache"
KEY = "k-1"
LONG = " ".join(f"w{i}" for i in range(200))


@pytest.fixture
async def dev() -> AsyncIterator[SimulatedEngine]:
    engine = await SimulatedEngine("127.0.0.1", 0, api_key=KEY, dev_mode=True).start()
    yield engine
    await engine.stop()


@pytest.fixture
async def dev_http(dev: SimulatedEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=dev.base_url, timeout=5) as client:
        yield client


async def test_without_dev_mode_the_route_does_not_exist(http: httpx.AsyncClient, engine: SimulatedEngine) -> None:
    answer = await http.post(RESET)
    assert (answer.status_code, answer.text) == (404, '{"detail":"Not Found"}')
    assert answer.headers["content-type"] == "application/json"
    assert engine.prefix_cache.resets == 0


async def test_without_dev_mode_an_api_key_does_not_turn_the_404_into_a_401() -> None:
    engine = await SimulatedEngine("127.0.0.1", 0, api_key=KEY).start()
    try:
        async with httpx.AsyncClient(base_url=engine.base_url) as http:
            answer = await http.post(RESET)
        assert (answer.status_code, answer.json()) == (404, {"detail": "Not Found"})
    finally:
        await engine.stop()


async def test_with_dev_mode_it_resets_without_the_api_key(dev_http: httpx.AsyncClient, dev: SimulatedEngine) -> None:
    dev.complete("tiny", LONG, 4)
    assert len(dev.prefix_cache) == 1
    answer = await dev_http.post(RESET)
    assert (answer.status_code, answer.text) == (200, '{"success":true}')
    assert answer.headers["content-type"] == "application/json"
    assert len(dev.prefix_cache) == 0 and dev.prefix_cache.resets == 1


async def test_busy_blocks_make_it_a_200_with_success_false(dev_http: httpx.AsyncClient, dev: SimulatedEngine) -> None:
    dev.complete("tiny", LONG, 4)
    with dev.prefix_cache.running_request():
        refused = await dev_http.post(RESET)
        assert (refused.status_code, refused.json()) == (200, {"success": False})
        assert len(dev.prefix_cache) == 1 and dev.prefix_cache.failed_resets == 1
        forced = await dev_http.post(RESET, params={"reset_running_requests": "true", "reset_external": "1"})
        assert (forced.status_code, forced.json()) == (200, {"success": True})
    assert len(dev.prefix_cache) == 0 and dev.prefix_cache.preempted == 1


async def test_a_slow_completion_holds_its_blocks(dev_http: httpx.AsyncClient, dev: SimulatedEngine) -> None:
    dev.inject(Fault(delay=0.5), route="completions")
    headers = {"Authorization": f"Bearer {KEY}"}
    slow = asyncio.create_task(
        dev_http.post("/v1/completions", json={"model": "tiny", "prompt": LONG}, headers=headers)
    )
    for _ in range(100):
        if dev.prefix_cache.running:
            break
        await asyncio.sleep(0.01)
    assert (await dev_http.post(RESET)).json() == {"success": False}
    assert (await slow).status_code == 200
    assert (await dev_http.post(RESET)).json() == {"success": True}


async def test_query_parameters_are_fastapi_booleans(dev_http: httpx.AsyncClient) -> None:
    answer = await dev_http.post(RESET, params={"reset_running_requests": "maybe", "reset_external": "yes"})
    assert answer.status_code == 400
    assert answer.json() == {"error": {
        "message": "1 validation error:\n  {'type': 'bool_parsing', 'loc': 'query.reset_running_requests', 'msg': "
                   "'Input should be a valid boolean, unable to interpret input', 'input': 'maybe'}",
        "type": "Bad Request", "param": "query.reset_running_requests", "code": 400}}  # fmt: skip


async def test_it_is_a_post(dev_http: httpx.AsyncClient) -> None:
    answer = await dev_http.get(RESET)
    assert (answer.status_code, answer.json(), answer.headers["allow"]) == (
        405,
        {"detail": "Method Not Allowed"},
        "POST",
    )


async def test_the_operator_update_behind_one_folder_is_fresh_after_the_reset(
    dev_http: httpx.AsyncClient, dev: SimulatedEngine, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    folder = write_peft_adapter(tmp_path / "sql", weights=b"v1")

    async def complete() -> str:
        answer = await dev_http.post("/v1/completions", json={"model": "sql", "prompt": LONG, "max_tokens": 8},
                                     headers=headers)  # fmt: skip
        return str(answer.json()["choices"][0]["text"])

    await dev_http.post("/v1/load_lora_adapter", json={"lora_name": "sql", "lora_path": str(folder)}, headers=headers)
    v1 = await complete()
    write_peft_adapter(folder, weights=b"v2")
    await dev_http.post("/v1/unload_lora_adapter", json={"lora_name": "sql"}, headers=headers)
    await dev_http.post("/v1/load_lora_adapter", json={"lora_name": "sql", "lora_path": str(folder)}, headers=headers)
    assert await complete() == v1, "stale before the reset"
    assert (await dev_http.post(RESET)).json() == {"success": True}
    assert await complete() != v1


def test_the_python_method_works_without_dev_mode() -> None:
    engine = SimulatedEngine()
    engine.complete("tiny", LONG, 4)
    assert engine.reset_prefix_cache(reset_external=True) is True and len(engine.prefix_cache) == 0
