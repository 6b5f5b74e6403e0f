"""Faults on demand: per request or per pod (delay, any status, a dropped connection), refused connections,
the ways a real engine loses adapters (a restart forgets everything, another client unloads one), and a
capacity limit on registrations. Evictions, which lose nothing from the listing, are in
`test_simulated_residency_and_metrics.py`."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from modeladapter.sandbox.engine import Fault, Route, SimulatedEngine, write_peft_adapter
from modeladapter.sandbox.engine.faults import FaultPlan

LOAD = "/v1/load_lora_adapter"


async def load(http: httpx.AsyncClient, name: str, path: Path) -> httpx.Response:
    return await http.post(LOAD, json={"lora_name": name, "lora_path": str(path)})


class TestPerRequestFaults:
    async def test_a_fault_hits_the_next_n_matching_requests_then_stops(
        self, engine: SimulatedEngine, http: httpx.AsyncClient, lora: Path
    ) -> None:
        engine.inject(Fault(status=503), route="load", times=2)
        assert (await http.get("/v1/models")).status_code == 200  # another route is untouched
        assert [(await load(http, "a", lora)).status_code for _ in range(3)] == [503, 503, 200]
        assert len(engine.faults) == 0

    @pytest.mark.parametrize(
        ("status", "body", "content_type"),
        [
            (502, "Bad Gateway", "text/plain; charset=utf-8"),
            (503, "Service Unavailable", "text/plain; charset=utf-8"),
            (401, '{"error":"Unauthorized"}', "application/json"),
        ],
    )
    async def test_injected_statuses_come_with_a_plausible_body(
        self, engine: SimulatedEngine, http: httpx.AsyncClient, status: int, body: str, content_type: str
    ) -> None:
        engine.inject(Fault(status=status))
        answer = await http.get("/v1/models")
        assert (answer.status_code, answer.text, answer.headers["content-type"]) == (status, body, content_type)

    async def test_an_injected_500_looks_like_a_vllm_engine_failure(
        self, engine: SimulatedEngine, http: httpx.AsyncClient
    ) -> None:
        engine.inject(Fault(status=500))
        answer = await http.get("/v1/models")
        assert answer.status_code == 500 and answer.json()["error"]["type"] == "InternalServerError"

    async def test_a_delay_alone_slows_the_answer_but_keeps_it(
        self, engine: SimulatedEngine, http: httpx.AsyncClient, lora: Path
    ) -> None:
        engine.inject(Fault(delay=0.3), route="load")
        started = time.monotonic()
        answer = await load(http, "a", lora)
        assert answer.status_code == 200 and time.monotonic() - started >= 0.3
        assert "a" in engine.adapters

    async def test_a_dropped_connection_gets_no_answer(self, engine: SimulatedEngine, http: httpx.AsyncClient) -> None:
        engine.inject(Fault(drop=True), route="models")
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get("/v1/models")
        assert engine.calls[-1].status is None
        assert (await http.get("/v1/models")).status_code == 200

    def test_nonsense_faults_are_refused(self) -> None:
        for make in (lambda: Fault(delay=-1), lambda: Fault(status=999), lambda: Fault(status=500, drop=True)):
            with pytest.raises(ValueError):
                make()
        with pytest.raises(ValueError):
            FaultPlan().add(Fault(status=500), times=0)


class TestPerPodFaults:
    async def test_a_fault_without_a_count_lasts_until_cleared(
        self, engine: SimulatedEngine, http: httpx.AsyncClient
    ) -> None:
        engine.inject(Fault(status=503), times=None)
        assert [(await http.get(path)).status_code for path in ("/v1/models", "/health", "/v1/models")] == [503] * 3
        engine.clear_faults()
        assert (await http.get("/v1/models")).status_code == 200

    async def test_refused_connections_until_accepted_again(
        self, engine: SimulatedEngine, http: httpx.AsyncClient
    ) -> None:
        await engine.refuse_connections()
        with pytest.raises(httpx.ConnectError):
            await http.get("/health")
        await engine.accept_connections()
        assert (await http.get("/health")).status_code == 200

    async def test_a_restart_forgets_every_adapter_and_comes_back_on_the_same_address(
        self, engine: SimulatedEngine, http: httpx.AsyncClient, lora: Path
    ) -> None:
        await load(http, "a", lora)
        address = engine.base_url
        await engine.restart(downtime=0.05)
        assert engine.adapters == {} and engine.base_url == address and engine.restarts == 1
        models = (await http.get("/v1/models")).json()["data"]
        assert [m["id"] for m in models] == ["tiny"]

    async def test_an_unload_by_another_client_leaves_the_model_list(
        self, engine: SimulatedEngine, http: httpx.AsyncClient, lora: Path
    ) -> None:
        await load(http, "a", lora)
        assert engine.unload_by_another_client("a") and not engine.unload_by_another_client("a")
        assert [m["id"] for m in (await http.get("/v1/models")).json()["data"]] == ["tiny"]

    async def test_an_evicted_adapter_stays_on_the_model_list(
        self, engine: SimulatedEngine, http: httpx.AsyncClient, lora: Path
    ) -> None:
        await load(http, "a", lora)
        assert engine.evict("a")
        assert [m["id"] for m in (await http.get("/v1/models")).json()["data"]] == ["tiny", "a"]


class TestCapacity:
    async def test_a_full_engine_rejects_a_new_adapter_but_reloads_a_known_one(self, tmp_path: Path) -> None:
        engine = await SimulatedEngine("127.0.0.1", 0, max_adapters=2).start()
        try:
            async with httpx.AsyncClient(base_url=engine.base_url) as http:
                paths = [write_peft_adapter(tmp_path / n) for n in ("a", "b", "c")]
                assert (await load(http, "a", paths[0])).status_code == 200
                assert (await load(http, "b", paths[1])).status_code == 200
                full = await load(http, "c", paths[2])
                assert full.status_code == 500 and "No free LoRA slot" in full.json()["error"]["message"]
                in_place = await http.post(LOAD, json={"lora_name": "a", "lora_path": str(paths[2]),
                                                       "load_inplace": True})  # fmt: skip
                assert in_place.status_code == 200
                assert sorted(engine.adapters) == ["a", "b"]
        finally:
            await engine.stop()

    async def test_a_full_worker_cache_evicts_the_adapter_used_longest_ago_and_keeps_listing_it(
        self, tmp_path: Path
    ) -> None:
        engine = await SimulatedEngine("127.0.0.1", 0, max_cpu_loras=2).start()
        try:
            async with httpx.AsyncClient(base_url=engine.base_url) as http:
                paths = [write_peft_adapter(tmp_path / n) for n in ("a", "b", "c")]
                await load(http, "a", paths[0])
                await load(http, "b", paths[1])
                await http.post("/v1/completions", json={"model": "a", "prompt": "use a"})
                assert (await load(http, "c", paths[2])).status_code == 200
                assert engine.resident == ("a", "c") and sorted(engine.adapters) == ["a", "b", "c"]
        finally:
            await engine.stop()

    def test_a_capacity_below_one_is_refused(self) -> None:
        with pytest.raises(ValueError):
            SimulatedEngine(max_adapters=0)


async def test_every_call_is_recorded(engine: SimulatedEngine, http: httpx.AsyncClient) -> None:
    await http.get("/v1/models")
    await http.post("/v1/unload_lora_adapter", json={"lora_name": "x"})
    assert [(c.method, c.path, c.status) for c in engine.calls] == [
        ("GET", "/v1/models", 200),
        ("POST", "/v1/unload_lora_adapter", 404),
    ]


def test_faults_can_target_each_route() -> None:
    plan = FaultPlan()
    plan.add(Fault(status=502), route=Route.UNLOAD)
    assert plan.take(Route.LOAD) is None
    assert plan.take(Route.UNLOAD) == Fault(status=502)
