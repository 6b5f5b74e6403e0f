"""The simulated vLLM's prefix cache, as vLLM 0.32 v1's: full prompt blocks (128 tokens, the CPU default) keyed on
the LoRA name and path, reused for the longest cached prefix (never the last token), answered by the weights
that computed them. New contents at the same path therefore answer stale until the cache is reset; a new path
never reuses old blocks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modeladapter.sandbox.engine import SimulatedEngine, write_peft_adapter
from modeladapter.sandbox.engine.kv_cache import DEFAULT_BLOCK_SIZE, LoraKey, PrefixCache

LONG = " ".join(f"w{i}" for i in range(200))
"""One full 128-token block and then some: its first block can be reused."""


def text(engine: SimulatedEngine, model: str, prompt: str = LONG) -> str:
    reply = engine.complete(model, prompt, 8)
    assert reply.status == 200, reply.body
    return str(json.loads(reply.body)["choices"][0]["text"])


def reference(tmp_path: Path, weights: bytes, prompt: str = LONG) -> str:
    """What `weights` answer with nothing cached."""
    fresh = SimulatedEngine(prefix_caching=False)
    fresh.load("ref", str(write_peft_adapter(tmp_path / f"ref-{weights.decode()}", weights=weights)))
    return text(fresh, "ref", prompt)


def update_in_place(engine: SimulatedEngine, path: Path, weights: bytes) -> None:
    """What the operator does to update an adapter behind the AIBrix runtime: same folder, unload, load."""
    write_peft_adapter(path, weights=weights)
    assert engine.unload("sql").status == 200
    assert engine.load("sql", str(path)).status == 200


def test_vllm_defaults_are_kept(tmp_path: Path) -> None:
    engine = SimulatedEngine()
    assert engine.prefix_cache.enabled and engine.prefix_cache.block_size == DEFAULT_BLOCK_SIZE == 128


def test_new_contents_at_the_same_path_answer_stale_until_the_cache_is_reset(tmp_path: Path) -> None:
    engine = SimulatedEngine()
    path = write_peft_adapter(tmp_path / "sql", weights=b"v1")
    engine.load("sql", str(path))
    v1 = text(engine, "sql")
    assert v1 == reference(tmp_path, b"v1")

    update_in_place(engine, path, b"v2")
    assert text(engine, "sql") == v1, "the old weights' blocks were reused"
    assert text(engine, "sql", "Hello world") == reference(tmp_path, b"v2", "Hello world"), "no full block: fresh"

    assert engine.reset_prefix_cache() is True
    assert text(engine, "sql") == reference(tmp_path, b"v2")
    assert engine.prefix_cache.resets == 1


def test_a_new_version_at_a_new_path_never_reuses_the_old_blocks(tmp_path: Path) -> None:
    engine = SimulatedEngine()
    engine.load("sql", str(write_peft_adapter(tmp_path / "v1", weights=b"v1")))
    text(engine, "sql")
    engine.unload("sql")
    engine.load("sql", str(write_peft_adapter(tmp_path / "v2", weights=b"v2")))
    assert text(engine, "sql") == reference(tmp_path, b"v2")


def test_blocks_are_per_adapter_name(tmp_path: Path) -> None:
    engine = SimulatedEngine()
    path = write_peft_adapter(tmp_path / "sql", weights=b"v1")
    engine.load("sql", str(path))
    text(engine, "sql")
    write_peft_adapter(path, weights=b"v2")
    engine.load("other", str(path))  # same path, another name: another key
    assert text(engine, "other") == reference(tmp_path, b"v2")


def test_a_stale_prefix_keeps_the_blocks_computed_after_it_stale(tmp_path: Path) -> None:
    engine = SimulatedEngine()
    path = write_peft_adapter(tmp_path / "sql", weights=b"v1")
    engine.load("sql", str(path))
    text(engine, "sql")
    update_in_place(engine, path, b"v2")
    longer = LONG + " " + " ".join(f"x{i}" for i in range(100))  # two full blocks: the second one is new
    stale = text(engine, "sql", longer)
    assert stale == reference(tmp_path, b"v1", longer)
    assert text(engine, "sql", longer) == stale, "the second block attends to the stale first one"


def test_the_last_token_is_always_computed(tmp_path: Path) -> None:
    engine = SimulatedEngine()
    path = write_peft_adapter(tmp_path / "sql", weights=b"v1")
    engine.load("sql", str(path))
    exactly_one_block = " ".join(f"w{i}" for i in range(128))
    text(engine, "sql", exactly_one_block)
    update_in_place(engine, path, b"v2")
    assert text(engine, "sql", exactly_one_block) == reference(tmp_path, b"v2", exactly_one_block)
    assert engine.prefix_cache.hits == 0


def test_a_smaller_block_size_caches_shorter_prompts(tmp_path: Path) -> None:
    engine = SimulatedEngine(block_size=2)
    path = write_peft_adapter(tmp_path / "sql", weights=b"v1")
    engine.load("sql", str(path))
    v1 = text(engine, "sql", "Hello big world")
    update_in_place(engine, path, b"v2")
    assert text(engine, "sql", "Hello big world") == v1


def test_with_prefix_caching_off_every_answer_is_fresh(tmp_path: Path) -> None:
    engine = SimulatedEngine(prefix_caching=False)
    path = write_peft_adapter(tmp_path / "sql", weights=b"v1")
    engine.load("sql", str(path))
    text(engine, "sql")
    update_in_place(engine, path, b"v2")
    assert text(engine, "sql") == reference(tmp_path, b"v2")
    assert len(engine.prefix_cache) == 0


async def test_a_restart_empties_the_cache(tmp_path: Path) -> None:
    engine = await SimulatedEngine("127.0.0.1", 0).start()
    try:
        path = write_peft_adapter(tmp_path / "sql", weights=b"v1")
        engine.load("sql", str(path))
        text(engine, "sql")
        assert len(engine.prefix_cache) == 1
        await engine.restart()
        assert len(engine.prefix_cache) == 0
        write_peft_adapter(path, weights=b"v2")
        engine.load("sql", str(path))
        assert text(engine, "sql") == reference(tmp_path, b"v2")
    finally:
        await engine.stop()


def test_the_base_model_is_cached_too_and_its_answer_does_not_change() -> None:
    engine = SimulatedEngine()
    first = text(engine, "tiny")
    assert text(engine, "tiny") == first and engine.prefix_cache.hits == 1


class TestPrefixCache:
    def test_the_key_is_the_name_and_the_path(self) -> None:
        cache = PrefixCache(block_size=2)
        tokens = ["a", "b", "c"]
        cache.use(LoraKey("sql", "/p"), tokens, "old")
        assert cache.use(LoraKey("sql", "/p"), tokens, "new").weights == "old"
        assert cache.use(LoraKey("sql", "/q"), tokens, "new").weights == "new"
        assert cache.use(LoraKey("x", "/p"), tokens, "new").weights == "new"
        assert cache.use(None, tokens, "base").weights == "base"

    def test_the_longest_prefix_counts_and_the_deepest_block_answers(self) -> None:
        cache = PrefixCache(block_size=2)
        key = LoraKey("sql", "/p")
        cache.use(key, ["a", "b", "c"], "v1")  # caches [a b]
        cache.use(key, ["a", "b", "c", "d", "e"], "v2")  # reuses [a b] (v1), adds [c d] as v1
        use = cache.use(key, ["a", "b", "c", "d", "e"], "v3")
        assert (use.weights, use.cached_tokens) == ("v1", 4)
        assert cache.use(key, ["z", "b", "c"], "v3") == type(use)("v3", 0)

    def test_the_least_recently_used_blocks_go_first(self) -> None:
        cache = PrefixCache(block_size=1, max_blocks=4)  # each prompt below fills two blocks
        key = LoraKey("sql", "/p")
        cache.use(key, ["a", "x"], "old")
        cache.use(key, ["b", "x"], "old")
        cache.use(key, ["a", "x"], "new")  # touches a's blocks
        cache.use(key, ["c", "x"], "old")  # evicts b's
        assert len(cache) == 4
        assert cache.use(key, ["a", "x"], "new").weights == "old"
        assert cache.use(key, ["b", "x"], "new").weights == "new"

    def test_a_reset_fails_while_blocks_are_in_use_unless_it_preempts(self) -> None:
        cache = PrefixCache(block_size=1)
        cache.use(None, ["a", "b"], "w")
        with cache.running_request():
            assert cache.reset() is False
            assert len(cache) == 2 and cache.failed_resets == 1
            assert cache.reset(reset_running_requests=True) is True
            assert len(cache) == 0 and cache.preempted == 1
        assert cache.running == 0 and cache.reset() is True and cache.resets == 2

    @pytest.mark.parametrize(("block_size", "max_blocks"), [(0, 1), (1, 0)])
    def test_sizes_must_be_positive(self, block_size: int, max_blocks: int) -> None:
        with pytest.raises(ValueError):
            PrefixCache(block_size=block_size, max_blocks=max_blocks)
