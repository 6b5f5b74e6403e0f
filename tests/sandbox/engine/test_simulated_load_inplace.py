"""`load_inplace`, as in vLLM 0.32: the flag stays in the engine's request for that name, and the worker reloads
such an adapter whenever a request uses it (vllm #33791), so every later completion reads the directory again.
A load without it reads once."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from modeladapter.sandbox.engine import SimulatedEngine, write_peft_adapter

LOAD = "/v1/load_lora_adapter"


def text(engine: SimulatedEngine, model: str) -> str:
    reply = engine.complete(model, "Hello world", 8)
    assert reply.status == 200, reply.body
    return str(json.loads(reply.body)["choices"][0]["text"])


def test_after_an_in_place_load_every_completion_reads_the_current_contents(tmp_path: Path) -> None:
    engine = SimulatedEngine()
    path = write_peft_adapter(tmp_path / "sql", weights=b"v1")
    engine.load("sql", str(path))
    v1 = text(engine, "sql")
    assert engine.load("sql", str(path), load_inplace=True).status == 200
    assert engine.adapters["sql"].load_inplace and text(engine, "sql") == v1

    write_peft_adapter(path, weights=b"v2")
    v2 = text(engine, "sql")
    assert v2 != v1, "the reload read the new contents, with no load request"
    assert text(engine, "sql") == v2
    assert engine.inplace_reads == 3


def test_the_flag_is_kept_from_a_first_load_too_and_dropped_by_an_unload(tmp_path: Path) -> None:
    engine = SimulatedEngine()
    path = write_peft_adapter(tmp_path / "sql", weights=b"v1")
    engine.load("sql", str(path), load_inplace=True)
    v1 = text(engine, "sql")
    write_peft_adapter(path, weights=b"v2")
    assert text(engine, "sql") != v1

    engine.unload("sql")
    engine.load("sql", str(path))
    reads = engine.inplace_reads
    write_peft_adapter(path, weights=b"v3")
    text(engine, "sql")
    assert engine.inplace_reads == reads and not engine.adapters["sql"].load_inplace


def test_without_it_the_engine_reads_only_at_load_time(tmp_path: Path) -> None:
    engine = SimulatedEngine()
    path = write_peft_adapter(tmp_path / "sql", weights=b"v1")
    engine.load("sql", str(path))
    v1 = text(engine, "sql")
    write_peft_adapter(path, weights=b"v2")
    assert text(engine, "sql") == v1 and engine.inplace_reads == 0


def test_a_directory_that_no_longer_loads_fails_the_request_like_a_failed_engine_core(tmp_path: Path) -> None:
    engine = SimulatedEngine()
    path = write_peft_adapter(tmp_path / "sql")
    engine.load("sql", str(path), load_inplace=True)
    (path / "adapter_config.json").unlink()
    reply = engine.complete("sql", "Hello world", 8)
    assert reply.status == 500
    assert json.loads(reply.body)["error"] == {
        "message": "EngineCore encountered an issue. See stack trace (above) for the root cause.",
        "type": "InternalServerError",
        "param": None,
        "code": 500,
    }


async def test_over_http_the_flag_reaches_the_engine(
    http: httpx.AsyncClient, engine: SimulatedEngine, lora: Path
) -> None:
    await http.post(LOAD, json={"lora_name": "sql", "lora_path": str(lora), "load_inplace": True})
    assert engine.adapters["sql"].load_inplace
    completion = await http.post("/v1/completions", json={"model": "sql", "prompt": "Hi", "max_tokens": 2})
    assert completion.status_code == 200 and engine.inplace_reads == 1
