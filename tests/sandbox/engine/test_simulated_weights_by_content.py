"""The simulated vLLM answers with what it read from an adapter's directory when it loaded it, as vLLM reads
the weights from disk at load time: new contents at the same path are new weights after an unload and a load,
and change nothing while the old load stands."""

from __future__ import annotations

import json
from pathlib import Path

from modeladapter.sandbox.engine import SimulatedEngine, write_peft_adapter
from modeladapter.sandbox.engine.adapter_files import read_peft_adapter
from modeladapter.sandbox.engine.vllm_texts import completion_text


def text(engine: SimulatedEngine, model: str, prompt: str = "Hello world") -> str:
    reply = engine.complete(model, prompt, 8)
    assert reply.status == 200, reply.body
    return str(json.loads(reply.body)["choices"][0]["text"])


def test_new_contents_at_the_same_path_answer_differently_only_after_unload_and_load(tmp_path: Path) -> None:
    engine = SimulatedEngine(prefix_caching=False)
    path = write_peft_adapter(tmp_path / "sql", weights=b"v1")
    engine.load("sql", str(path))
    v1 = text(engine, "sql")

    write_peft_adapter(path, weights=b"v2")
    assert text(engine, "sql") == v1, "the engine keeps what it read at load time"

    engine.unload("sql")
    engine.load("sql", str(path))
    v2 = text(engine, "sql")
    assert v2 != v1
    assert engine.adapters["sql"].path == str(path)


def test_the_config_is_part_of_the_weights_too(tmp_path: Path) -> None:
    engine = SimulatedEngine(prefix_caching=False)
    path = write_peft_adapter(tmp_path / "sql", weights=b"same", rank=4)
    engine.load("sql", str(path))
    before = text(engine, "sql")
    write_peft_adapter(path, weights=b"same", rank=8)
    engine.unload("sql")
    engine.load("sql", str(path))
    assert text(engine, "sql") != before


def test_identical_contents_in_two_directories_answer_alike(tmp_path: Path) -> None:
    engine = SimulatedEngine(prefix_caching=False)
    engine.load("a", str(write_peft_adapter(tmp_path / "a", weights=b"w")))
    engine.load("b", str(write_peft_adapter(tmp_path / "b", weights=b"w")))
    engine.load("c", str(write_peft_adapter(tmp_path / "c")))
    assert text(engine, "a") == text(engine, "b") != text(engine, "c")


def test_the_answer_is_the_fingerprints_and_the_base_model_keeps_its_path(tmp_path: Path) -> None:
    engine = SimulatedEngine(prefix_caching=False)
    path = write_peft_adapter(tmp_path / "sql", weights=b"v1")
    engine.load("sql", str(path))
    adapter = read_peft_adapter(path)
    assert adapter is not None and engine.adapters["sql"].fingerprint == adapter.fingerprint
    assert text(engine, "sql") == completion_text(adapter.fingerprint, "Hello world", 8)
    assert text(engine, "tiny") == completion_text(engine.model_path, "Hello world", 8)


def test_the_fingerprint_reads_the_weights_file_vllm_would_read(tmp_path: Path) -> None:
    path = write_peft_adapter(tmp_path / "lora", weights=b"safetensors")
    with_safetensors = read_peft_adapter(path)
    (path / "adapter_model.bin").write_bytes(b"ignored while a .safetensors file exists")
    assert read_peft_adapter(path) == with_safetensors
    (path / "adapter_model.safetensors").unlink()
    with_bin = read_peft_adapter(path)
    assert with_bin is not None and with_safetensors is not None
    assert with_bin.fingerprint != with_safetensors.fingerprint


def test_default_stand_in_weights_differ_by_directory_and_repeat_for_the_same_one(tmp_path: Path) -> None:
    first = read_peft_adapter(write_peft_adapter(tmp_path / "a"))
    again = read_peft_adapter(write_peft_adapter(tmp_path / "a"))
    other = read_peft_adapter(write_peft_adapter(tmp_path / "b"))
    assert first is not None and again is not None and other is not None
    assert first.fingerprint == again.fingerprint != other.fingerprint


def test_sglang_still_answers_by_path(tmp_path: Path) -> None:
    engine = SimulatedEngine(flavor="sglang")
    path = write_peft_adapter(tmp_path / "sql", weights=b"v1")
    engine.load("sql", str(path))
    assert text(engine, "sql") == completion_text(str(path), "Hello world", 8)
