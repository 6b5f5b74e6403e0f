"""Registration is not residency, as in vLLM 0.32: `/v1/models` lists every adapter loaded and not unloaded,
whether or not its weights are in the worker's LRU cache. An evicted adapter stays listed and its next request
reads it from its path again; only a restart or an unload takes it off the list. `/metrics` shows the requests
in flight under vLLM's metric names, and `vllm:lora_requests_info` names their adapters."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from modeladapter.sandbox.engine import Fault, SimulatedEngine, write_peft_adapter

PROMPT = "Hello world"


def text(engine: SimulatedEngine, model: str) -> str:
    reply = engine.complete(model, PROMPT, 8)
    assert reply.status == 200, reply.body
    return str(json.loads(reply.body)["choices"][0]["text"])


def listed(engine: SimulatedEngine) -> list[str]:
    return [card["id"] for card in json.loads(engine.models().body)["data"]]


class TestResidency:
    def test_an_evicted_adapter_stays_listed_and_its_next_request_reads_it_back(self, tmp_path: Path) -> None:
        engine = SimulatedEngine()
        engine.load("sql", str(write_peft_adapter(tmp_path / "sql")))
        before = text(engine, "sql")
        assert engine.evict("sql") and not engine.evict("sql"), "evicting a non-resident adapter does nothing"
        assert listed(engine) == ["tiny", "sql"] and not engine.resident
        assert text(engine, "sql") == before, "served, not refused: the eviction costs a read, not the request"
        assert engine.resident == ("sql",) and engine.readmissions == 1
        assert text(engine, "sql") == before and engine.readmissions == 1, "resident again: no second read"

    def test_a_readmission_reads_whatever_the_path_holds_now(self, tmp_path: Path) -> None:
        engine = SimulatedEngine()
        path = write_peft_adapter(tmp_path / "sql", weights=b"v1")
        engine.load("sql", str(path))
        v1 = text(engine, "sql")
        write_peft_adapter(path, weights=b"v2")
        assert text(engine, "sql") == v1, "resident: the new files are not read"
        engine.evict("sql")
        engine.load("reference", str(write_peft_adapter(tmp_path / "v2", weights=b"v2")))
        assert text(engine, "sql") == text(engine, "reference") != v1

    def test_an_evicted_adapter_whose_files_are_gone_fails_its_request_but_stays_listed(self, tmp_path: Path) -> None:
        engine = SimulatedEngine()
        path = write_peft_adapter(tmp_path / "sql")
        engine.load("sql", str(path))
        engine.evict("sql")
        shutil.rmtree(path)
        reply = engine.complete("sql", PROMPT, 4)
        assert reply.status == 500 and "EngineCore encountered an issue" in reply.body
        assert listed(engine) == ["tiny", "sql"] and not engine.resident

    def test_beyond_max_cpu_loras_the_least_recently_used_is_evicted_and_still_listed(self, tmp_path: Path) -> None:
        engine = SimulatedEngine(max_loras=1, max_cpu_loras=2)
        for name in ("a", "b"):
            engine.load(name, str(write_peft_adapter(tmp_path / name)))
        text(engine, "a")  # b is now the least recently used
        assert engine.load("c", str(write_peft_adapter(tmp_path / "c"))).status == 200
        assert listed(engine) == ["tiny", "a", "b", "c"] and engine.resident == ("a", "c")
        text(engine, "b")
        assert engine.resident == ("c", "b") and engine.readmissions == 1

    def test_an_unload_forgets_the_name_but_leaves_the_weights_cached(self, tmp_path: Path) -> None:
        engine = SimulatedEngine()
        path = str(write_peft_adapter(tmp_path / "sql"))
        engine.load("sql", path)
        first_id = engine.adapters["sql"].int_id
        assert engine.unload("sql").status == 200
        assert listed(engine) == ["tiny"] and not engine.resident and engine.cached_copies == 1
        engine.load("sql", path)
        assert engine.adapters["sql"].int_id != first_id and engine.cached_copies == 2

    def test_what_takes_an_adapter_off_the_list_is_an_unload_by_another_client_or_a_restart(
        self, tmp_path: Path
    ) -> None:
        engine = SimulatedEngine()
        for name in ("a", "b"):
            engine.load(name, str(write_peft_adapter(tmp_path / name)))
        assert engine.unload_by_another_client("a") and not engine.unload_by_another_client("a")
        assert listed(engine) == ["tiny", "b"]
        engine.forget_everything()  # what restart() does while the engine is down
        assert listed(engine) == ["tiny"] and engine.cached_copies == 0

    def test_settings_vllm_refuses_are_refused(self) -> None:
        with pytest.raises(ValueError):
            SimulatedEngine(max_loras=0)
        with pytest.raises(ValueError):
            SimulatedEngine(max_loras=2, max_cpu_loras=1)


def families(exposition: str) -> dict[str, list[Sample]]:
    return {family.name: family.samples for family in text_string_to_metric_families(exposition)}


async def scrape(http: httpx.AsyncClient) -> dict[str, list[Sample]]:
    answer = await http.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return families(answer.text)


def latest_lora_info(found: dict[str, list[Sample]]) -> dict[str, str]:
    """The labels of the newest `vllm:lora_requests_info` series, as a reader of vLLM's metrics picks it."""
    return dict(max(found["vllm:lora_requests_info"], key=lambda s: s.value).labels)


async def until_running(http: httpx.AsyncClient, count: int) -> dict[str, list[Sample]]:
    async with asyncio.timeout(5):
        while True:
            found = await scrape(http)
            running = sum(s.value for s in found["vllm:num_requests_running"])
            waiting = sum(s.value for s in found["vllm:num_requests_waiting"])
            if running + waiting == count:
                return found
            await asyncio.sleep(0.02)


class TestMetrics:
    async def test_metrics_use_vllms_names_and_labels_and_need_no_api_key(self, tmp_path: Path) -> None:
        engine = await SimulatedEngine("127.0.0.1", 0, api_key="k", served_model_name="tiny").start()
        try:
            async with httpx.AsyncClient(base_url=engine.base_url) as http:
                assert (await http.get("/v1/models")).status_code == 401
                found = await scrape(http)
        finally:
            await engine.stop()
        assert [(s.labels, s.value) for s in found["vllm:num_requests_running"]] == [
            ({"engine": "0", "model_name": "tiny"}, 0.0)
        ]
        assert [(s.labels, s.value) for s in found["vllm:num_requests_waiting"]] == [
            ({"engine": "0", "model_name": "tiny"}, 0.0)
        ]
        assert found["vllm:lora_requests_info"] == [], "no engine step yet, so no series"

    async def test_the_adapter_of_a_running_request_is_named_and_the_newest_series_wins(
        self, engine: SimulatedEngine, http: httpx.AsyncClient, lora: Path
    ) -> None:
        engine.load("sql", str(lora))
        engine.inject(Fault(delay=0.5), route="completions")
        slow = asyncio.create_task(http.post("/v1/completions", json={"model": "sql", "prompt": PROMPT}))
        during = await until_running(http, 1)
        assert latest_lora_info(during) == {
            "max_lora": "1",
            "running_lora_adapters": "sql",
            "waiting_lora_adapters": "",
        }
        assert (await slow).status_code == 200
        after = await scrape(http)
        assert sum(s.value for s in after["vllm:num_requests_running"]) == 0
        assert latest_lora_info(after) == {"max_lora": "1", "running_lora_adapters": "", "waiting_lora_adapters": ""}
        assert len(after["vllm:lora_requests_info"]) == 2, "vLLM keeps every label combination it has set"

    async def test_beyond_max_loras_an_adapters_requests_wait(self, tmp_path: Path) -> None:
        engine = await SimulatedEngine("127.0.0.1", 0, max_loras=1).start()
        try:
            for name in ("a", "b"):
                engine.load(name, str(write_peft_adapter(tmp_path / name)))
            engine.inject(Fault(delay=0.5), route="completions", times=3)
            async with httpx.AsyncClient(base_url=engine.base_url) as http:
                requests = []
                for count, model in enumerate(("a", "b", "tiny"), start=1):  # one after the other: a takes the slot
                    completion = http.post("/v1/completions", json={"model": model, "prompt": PROMPT})
                    requests.append(asyncio.create_task(completion))
                    during = await until_running(http, count)
                assert [s.value for s in during["vllm:num_requests_running"]] == [2.0]  # a and the base model
                assert [s.value for s in during["vllm:num_requests_waiting"]] == [1.0]
                assert latest_lora_info(during) == {
                    "max_lora": "1",
                    "running_lora_adapters": "a",
                    "waiting_lora_adapters": "b",
                }
                assert [r.status_code for r in await asyncio.gather(*requests)] == [200, 200, 200]
        finally:
            await engine.stop()

    async def test_an_evicted_adapter_is_named_again_once_a_request_uses_it(
        self, engine: SimulatedEngine, http: httpx.AsyncClient, lora: Path
    ) -> None:
        engine.load("sql", str(lora))
        engine.evict("sql")
        answer = await http.post("/v1/completions", json={"model": "sql", "prompt": PROMPT})
        assert answer.status_code == 200 and engine.resident == ("sql",)
        named = {s.labels["running_lora_adapters"] for s in (await scrape(http))["vllm:lora_requests_info"]}
        assert named == {"sql", ""}

    async def test_a_restart_starts_the_series_afresh(
        self, engine: SimulatedEngine, http: httpx.AsyncClient, lora: Path
    ) -> None:
        engine.load("sql", str(lora))
        assert (await http.post("/v1/completions", json={"model": "sql", "prompt": PROMPT})).status_code == 200
        await engine.restart()
        assert (await scrape(http))["vllm:lora_requests_info"] == []
