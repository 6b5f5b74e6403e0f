"""Updating an adapter's artifact on the real engine: what vLLM 0.32 (CPU, the real-engine lane) serves after
`unload` + `load` of a new version, and what `POST /reset_prefix_cache` changes.

The operator updates an adapter on a pod by unloading it and loading the new artifact (never `load_inplace`),
then, when the new version is served from the same `lora_path` as the old one, resetting the prefix cache.
These tests are the engine-level evidence for that, at temperature 0, with a prompt of several KV blocks sent
(and cached) before each update:

* vLLM's prefix-cache key for a LoRA request is `("lora", name, path)` (`v1/core/kv_cache_utils.py`,
  `_gen_lora_extra_hash_keys`), not the adapter's int id nor its contents. A new version at a NEW path
  cannot reuse the old version's blocks; new contents at the SAME path and under the same name do: the
  prompt's cached KV, computed with the old weights, is served with the new weights (a hybrid answer that is
  neither version's) until the blocks are evicted or the cache is reset.
* `POST /reset_prefix_cache` (only with `VLLM_SERVER_DEV_MODE=1`, else 404; never guarded by `--api-key`)
  answers `{"success": false}` while running requests hold blocks, unless `?reset_running_requests=true`.
* Unload only forgets the name in the API server: the worker keeps the adapter's weights under its int id,
  and a reload under the same name gets a new int id (so the worker reads the new files).
* `load_inplace` makes the worker re-read the adapter from disk on every step of every later request, and
  an adapter whose files vanish while it is registered kills the whole engine the next time it is read.

One dev-mode server (`--block-size 32`, `--enable-prompt-tokens-details`, `--api-key`) serves most tests; a
second, plain one (vLLM's defaults) serves the 404 and, last, the test that kills it. Never skipped: without
the lane (`.ci/prepare/30-vllm`) the tests fail and say how to prepare it. About 90 s, most of it the two
servers starting.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from modeladapter.sandbox.engine.vllm_lane import Lane, VllmServer

pytestmark = pytest.mark.vllm

KEY = "lane-updates-key"
BLOCK = 32
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Kubernetes controllers reconcile desired state with actual state.",
    "LoRA adapters are loaded and unloaded at runtime over HTTP.",
    "vLLM serves an OpenAI compatible API for completions and chat.",
    "Hello world! This is a tiny random model used only for testing.",
)
# 182 tokens with the lane's tokenizer: five full blocks of 32 are cached, the rest is computed every time.
LONG = " ".join(SENTENCES * 3) + " Kubernetes controllers"
SHORT = "Kubernetes controllers"  # two tokens: no full block, so nothing of it is ever cached
TOKENS = 16


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    cached_tokens: int


class Engine:
    """A thin client for one real vLLM server: the calls an update makes, and a greedy completion."""

    def __init__(self, server: VllmServer) -> None:
        self.server = server
        headers = {"Authorization": f"Bearer {server.api_key}"} if server.api_key is not None else {}
        self.http = httpx.Client(base_url=server.base_url, headers=headers, timeout=120)

    def close(self) -> None:
        self.http.close()

    def load(self, name: str, path: Path | str, *, inplace: bool = False) -> None:
        body: dict[str, object] = {"lora_name": name, "lora_path": str(path)}
        if inplace:
            body["load_inplace"] = True
        answer = self.http.post("/v1/load_lora_adapter", json=body)
        assert answer.status_code == 200, answer.text

    def unload(self, name: str) -> None:
        answer = self.http.post("/v1/unload_lora_adapter", json={"lora_name": name})
        assert answer.status_code == 200, answer.text

    def complete(self, model: str, prompt: str = LONG, max_tokens: int = TOKENS) -> Completion:
        answer = self.http.post(
            "/v1/completions", json={"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
        )
        assert answer.status_code == 200, answer.text
        usage = answer.json()["usage"]
        details = usage.get("prompt_tokens_details") or {}
        return Completion(
            answer.json()["choices"][0]["text"], usage["prompt_tokens"], details.get("cached_tokens") or 0
        )

    def reset_prefix_cache(self, **query: str) -> httpx.Response:
        return self.http.post("/reset_prefix_cache", params=query)

    def worker_loras(self) -> set[int]:
        """The int ids of the adapters the worker holds (its LRU cache), through the dev-mode RPC route."""
        answer = self.http.post("/collective_rpc", json={"method": "list_loras"})
        assert answer.status_code == 200, answer.text
        [ids] = answer.json()["results"]
        return {int(i) for i in ids}

    def metric(self, name: str) -> str:
        """The text of the first sample of `name` in `/metrics`."""
        found = re.search(rf"^{re.escape(name)}(\{{.*\}})? (\S+)$", self.http.get("/metrics").text, re.MULTILINE)
        assert found is not None, f"{name} is not in /metrics"
        return found.group(0)


def start(server: VllmServer) -> VllmServer:
    try:
        return server.start()
    except RuntimeError as error:
        pytest.fail(f"the real vLLM did not start: {error}", pytrace=False)


@pytest.fixture(scope="module")
def lane() -> Lane:
    lane = Lane()
    problem = lane.problem()
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    return lane


@pytest.fixture(scope="module")
def engine(lane: Lane) -> Iterator[Engine]:
    """The shared server: dev mode on, KV blocks of 32 tokens, cached-token counts in each completion's usage."""
    server = start(
        VllmServer("127.0.0.1", free_port(), lane=lane, api_key=KEY, dev_mode=True, block_size=BLOCK,
                   prompt_tokens_details=True)
    )  # fmt: skip
    client = Engine(server)
    try:
        yield client
    finally:
        client.close()
        server.stop()


@pytest.fixture(scope="module")
def plain(lane: Lane) -> Iterator[Engine]:
    """A second server as vLLM starts it by default: no dev mode, no prefix-caching or block-size flag."""
    server = start(VllmServer("127.0.0.1", free_port(), lane=lane, api_key=KEY, prefix_caching=None))
    client = Engine(server)
    try:
        yield client
    finally:
        client.close()
        server.stop()


@dataclass(frozen=True)
class References:
    """Each lane adapter's greedy answers, loaded fresh under a name of its own."""

    long: dict[str, str]
    short: dict[str, str]


@pytest.fixture(scope="module")
def references(engine: Engine, lane: Lane) -> References:
    long: dict[str, str] = {}
    short: dict[str, str] = {}
    for adapter in ("lora-a", "lora-b", "lora-c"):
        engine.load(f"ref-{adapter}", lane.adapter(adapter))
        long[adapter] = engine.complete(f"ref-{adapter}").text
        short[adapter] = engine.complete(f"ref-{adapter}", SHORT, 8).text
    print(f"\nreferences, long prompt: {long}\nreferences, short prompt: {short}")
    return References(long, short)


def version(lane: Lane, adapter: str, directory: Path) -> Path:
    """`directory` made to hold exactly the lane's `adapter` (a new artifact version written in place)."""
    shutil.rmtree(directory, ignore_errors=True)
    shutil.copytree(lane.adapter(adapter), directory)
    return directory


def send_and_cache(engine: Engine, name: str) -> Completion:
    """The long prompt twice: the second answer comes from cached blocks (several of them) and is the same."""
    first = engine.complete(name)
    again = engine.complete(name)
    assert again.text == first.text
    assert again.cached_tokens >= 4 * BLOCK and again.cached_tokens % BLOCK == 0, again
    return again


# --- (e) prefix caching, and (i) two adapters that answer differently -------------------------------------


def test_prefix_caching_is_on_and_a_long_prompt_is_served_from_several_cached_blocks(
    engine: Engine, lane: Lane
) -> None:
    info = engine.metric("vllm:cache_config_info")
    assert 'enable_prefix_caching="True"' in info and f'block_size="{BLOCK}"' in info, info
    engine.load("cached", lane.adapter("lora-a"))
    first = engine.complete("cached")
    assert first.prompt_tokens == 182 and first.cached_tokens == 0
    again = send_and_cache(engine, "cached")
    assert again.cached_tokens == 5 * BLOCK  # the full blocks; the last, partial one is computed again
    engine.unload("cached")


def test_the_lane_adapters_give_different_greedy_answers_to_the_long_prompt(references: References) -> None:
    a, b, c = (references.long[name] for name in ("lora-a", "lora-b", "lora-c"))
    assert a and b and c, "an adapter stopped at once; the comparisons below would prove little"
    assert len({a, b, c}) == 3, references.long


# --- (ii) new path, (iii) same path: the trap, (iv) same path + reset: the fix ----------------------------


def test_an_update_from_a_new_path_serves_the_new_version(engine: Engine, lane: Lane, tmp_path: Path) -> None:
    old, new = version(lane, "lora-a", tmp_path / "v1"), version(lane, "lora-b", tmp_path / "v2")
    engine.load("moved", old)
    before = send_and_cache(engine, "moved")

    engine.unload("moved")
    engine.load("moved", new)
    after = engine.complete("moved")
    engine.load("moved-fresh", new)
    fresh = engine.complete("moved-fresh")

    print(f"\nnew path: old {before.text!r}, after the update {after.text!r}, fresh new {fresh.text!r}")
    assert after.cached_tokens == 0, "blocks of the old path were reused"
    assert after.text == fresh.text and after.text != before.text
    engine.unload("moved")
    engine.unload("moved-fresh")


def test_an_update_at_the_same_path_serves_the_old_versions_cached_blocks(
    engine: Engine, lane: Lane, references: References, tmp_path: Path
) -> None:
    """THE TRAP: the prompt's KV computed with version A is served with version B's weights."""
    path = version(lane, "lora-a", tmp_path / "artifact")
    engine.load("same", path)
    before = send_and_cache(engine, "same")
    assert before.text == references.long["lora-a"]

    version(lane, "lora-b", path)
    engine.unload("same")
    engine.load("same", path)
    stale = engine.complete("same")
    again = engine.complete("same")
    engine.load("same-fresh", path)
    fresh = engine.complete("same-fresh")

    print(f"\nsame path: old {before.text!r}, stale {stale.text!r}, fresh new {fresh.text!r}")
    assert fresh.text == references.long["lora-b"] and fresh.cached_tokens == 0
    assert stale.cached_tokens == before.cached_tokens, "the old version's blocks were not reused"
    assert stale.text != fresh.text, "the same-path update served the new version: vLLM no longer reuses stale KV"
    # Neither version's answer: the cached prompt blocks hold A's keys and values, the rest is computed with B.
    assert stale.text != before.text
    assert again == stale, "the stale blocks are served again and again, not once"
    engine.unload("same")
    engine.unload("same-fresh")


def test_resetting_the_prefix_cache_after_a_same_path_update_serves_the_new_version(
    engine: Engine, lane: Lane, references: References, tmp_path: Path
) -> None:
    path = version(lane, "lora-a", tmp_path / "artifact")
    engine.load("fixed", path)
    before = send_and_cache(engine, "fixed")

    version(lane, "lora-b", path)
    engine.unload("fixed")
    engine.load("fixed", path)
    reset = engine.reset_prefix_cache()
    assert (reset.status_code, reset.headers["content-type"], reset.json()) == (
        200,
        "application/json",
        {"success": True},
    )
    after = engine.complete("fixed")

    print(f"\nsame path + reset: old {before.text!r}, after the update {after.text!r}")
    assert after.cached_tokens == 0
    assert after.text == references.long["lora-b"] and after.text != before.text
    assert engine.complete("fixed").cached_tokens == before.cached_tokens  # cached again, now with B's KV
    engine.unload("fixed")


# --- (b) /reset_prefix_cache: running requests, method, the API key ---------------------------------------


def test_the_reset_fails_while_a_request_holds_blocks_unless_running_requests_are_reset(
    engine: Engine, lane: Lane
) -> None:
    engine.load("runner", lane.adapter("lora-c"))
    body = {"model": "runner", "prompt": SHORT, "max_tokens": 240, "temperature": 0, "ignore_eos": True}
    undisturbed = engine.http.post("/v1/completions", json=body).json()["choices"][0]["text"]
    answers: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: answers.append(engine.http.post("/v1/completions", json=body)))
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while not engine.metric("vllm:num_requests_running").endswith(" 1.0"):
            assert time.monotonic() < deadline, "the long request never ran"
            time.sleep(0.02)
        held = engine.reset_prefix_cache()
        forced = engine.reset_prefix_cache(reset_running_requests="true")
    finally:
        worker.join(timeout=60)
    assert (held.status_code, held.json()) == (200, {"success": False})
    assert (forced.status_code, forced.json()) == (200, {"success": True})
    [answer] = answers
    assert answer.status_code == 200 and answer.json()["usage"]["completion_tokens"] == 240
    # The preempted request is computed again from its tokens; greedy, it ends with the same text.
    assert answer.json()["choices"][0]["text"] == undisturbed
    assert engine.http.get("/reset_prefix_cache").status_code == 405  # POST only
    engine.unload("runner")


def test_the_api_key_does_not_guard_the_dev_routes(engine: Engine) -> None:
    with httpx.Client(base_url=engine.server.base_url, timeout=30) as anonymous:
        assert anonymous.get("/v1/models").status_code == 401
        reset = anonymous.post("/reset_prefix_cache")
        assert (reset.status_code, reset.json()) == (200, {"success": True})
        assert anonymous.post("/collective_rpc", json={"method": "list_loras"}).status_code == 200


# --- (c) unload and the worker's LoRA cache ---------------------------------------------------------------


def test_unload_leaves_the_weights_in_the_worker_and_a_reload_gets_a_new_int_id(engine: Engine, lane: Lane) -> None:
    engine.load("kept", lane.adapter("lora-a"))  # the load itself reads the adapter into the worker
    loaded = engine.worker_loras()
    kept_id = max(loaded)  # int ids count up; the newest load has the largest
    engine.unload("kept")
    assert engine.worker_loras() == loaded, "the unload changed the worker's adapters"
    engine.load("kept", lane.adapter("lora-a"))
    reloaded = engine.worker_loras()
    assert max(reloaded) > kept_id, "the reload reused the old int id"
    engine.unload("kept")


# --- (d) load_inplace -------------------------------------------------------------------------------------


def test_load_inplace_makes_the_worker_reread_the_files_on_every_request(
    engine: Engine, lane: Lane, references: References, tmp_path: Path
) -> None:
    assert all(references.short.values()) and len(set(references.short.values())) == 3, references.short
    engine.load("inplace", lane.adapter("lora-a"))
    assert engine.complete("inplace", SHORT, 8).text == references.short["lora-a"]
    path = version(lane, "lora-b", tmp_path / "artifact")
    engine.load("inplace", path, inplace=True)
    assert engine.complete("inplace", SHORT, 8).text == references.short["lora-b"]

    version(lane, "lora-c", path)  # new files, and no call to the engine at all
    assert engine.complete("inplace", SHORT, 8).text == references.short["lora-c"]
    engine.unload("inplace")  # before the files go: the next read of vanished files would kill the engine


# --- (v) without dev mode, and an adapter whose files vanish ----------------------------------------------


def test_without_dev_mode_there_is_no_reset_route_and_prefix_caching_is_on_with_blocks_of_128(plain: Engine) -> None:
    info = plain.metric("vllm:cache_config_info")
    assert 'enable_prefix_caching="True"' in info and 'block_size="128"' in info, info
    for method in ("POST", "GET"):
        answer = plain.http.request(method, "/reset_prefix_cache")
        assert (answer.status_code, answer.json()) == (404, {"detail": "Not Found"})
    assert plain.http.post("/collective_rpc", json={"method": "list_loras"}).status_code == 404


def test_a_registered_adapter_whose_files_vanish_kills_the_engine_when_it_is_read_again(
    plain: Engine, lane: Lane, tmp_path: Path
) -> None:
    """Runs last: it ends the plain server. `--max-loras 2` keeps two adapters in the worker; a third evicts
    the least recently used, which is read from its path again on its next request."""
    path = version(lane, "lora-c", tmp_path / "artifact")
    plain.load("vanishing", path)
    plain.complete("vanishing", SHORT, 4)
    for other in ("lora-a", "lora-b"):
        plain.load(other, lane.adapter(other))
        plain.complete(other, SHORT, 4)
    shutil.rmtree(path)

    answer = plain.http.post("/v1/completions", json={"model": "vanishing", "prompt": SHORT, "max_tokens": 4})
    assert answer.status_code == 500 and "EngineCore encountered an issue" in answer.text, answer.text
    process = plain.server.process
    assert process is not None
    process.wait(timeout=60)  # the API server shuts down with its engine
    with pytest.raises(httpx.TransportError):
        plain.http.get("/health")
