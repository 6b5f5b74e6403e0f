"""A simulated inference engine: vLLM 0.32's HTTP API (or SGLang's) on aiohttp, with its state in memory and
faults on demand.

    engine = SimulatedEngine("127.0.0.2", 8000, api_key="k", max_lora_rank=8)
    await engine.start()                                   # inside a running event loop
    engine.inject(Fault(status=503), route="load")         # the next load answers 503
    await engine.restart()                                 # forget every adapter, like a container restart
    engine.adapters                                        # {name: LoadedAdapter} as /v1/models lists them
    engine.resident                                        # the registered ones whose weights are in the worker
    engine.evict("a")                                      # LRU eviction: still listed, re-read on its next request
    engine.unload_by_another_client("a")                   # gone from /v1/models, as a real engine can lose it
    engine.reset_prefix_cache()                            # what POST /reset_prefix_cache does (dev mode)
    await engine.stop()

The vLLM flavor answers with vLLM's exact status codes, content types and messages (`vllm_texts`): plain-text
`Success: ...` without a content type on load and unload, the nested JSON error envelope, `{"error":
"Unauthorized"}` with `--api-key` on `/v1/*`, and `/v1/models` cards with `root` and `parent`. Like vLLM, it
loads a `lora_path` only if that directory holds a PEFT `adapter_config.json`, checks rank and bias against
`max_lora_rank`, and keeps listing what it loaded until it is unloaded.

Registration and residency are apart, as in vLLM: `/v1/models` lists what is registered (loaded and not
unloaded); the worker's LRU cache holds the weights of at most `max_cpu_loras` adapters (None: every one), keyed
by the adapter's int id. A load makes the adapter resident, evicting the least recently used beyond that; an
evicted adapter stays listed, and its next request reads it from its `lora_path` again (a re-admission: it
costs a disk read, and if the files are gone the request fails with the engine core's 500; the real engine
then dies). An unload only forgets the name: the weights stay cached under the old int id until evicted (vllm
#54839), and a reload under the same name gets a new int id. `GET /metrics` (never behind `--api-key`) serves
vLLM's request gauges and `vllm:lora_requests_info` (`vllm_metrics`); at most `max_loras` adapters run at once.

What an adapter answers depends on what was read from its directory at load time (`adapter_files`), and, as
in vLLM, a load with `load_inplace` makes the engine read the directory again for every later request. The
prefix cache (`kv_cache`, on unless `prefix_caching=False`) keys blocks on the adapter's name and path only, so
new contents loaded from the same path answer with the old weights for prompts whose blocks are cached, until
the cache is reset: `reset_prefix_cache()`, or `POST /reset_prefix_cache` when `dev_mode` (vLLM's
`VLLM_SERVER_DEV_MODE=1`) serves it; without it the route is FastAPI's 404.

Ways a real engine loses adapters, on demand: `restart()` (every one), `unload_by_another_client(name)` (one:
vLLM lets any holder of an API key unload). `evict(name)` is vLLM's LRU eviction at a moment of the test's
choosing, which no client can observe in `/v1/models`. Beyond vLLM, for tests: `max_adapters`, a limit on
registered adapters whose excess loads get a 500 from the worker (real vLLM 0.32 never refuses a load for
capacity: it evicts inside the worker and keeps listing the adapter); `refuse_connections()` /
`accept_connections()` (the listening socket closes: connection refused); per-request or per-pod `Fault`s
(delay, any status, a dropped connection).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final

from aiohttp import web

from modeladapter.sandbox.engine import vllm_texts as texts
from modeladapter.sandbox.engine import wire
from modeladapter.sandbox.engine.adapter_files import BrokenAdapterConfig, PeftAdapter, read_peft_adapter
from modeladapter.sandbox.engine.faults import Fault, FaultPlan, Route
from modeladapter.sandbox.engine.kv_cache import DEFAULT_BLOCK_SIZE, LoraKey, PrefixCache
from modeladapter.sandbox.engine.vllm_metrics import EngineMetrics
from modeladapter.sandbox.engine.wire import Reply as Reply
from modeladapter.sandbox.engine.wire import to_response as to_response

MAX_CALLS_KEPT: Final = 1000
GUARDED_PREFIXES: Final = ("/v1", "/v2", "/inference", "/cohere")
"""The paths vLLM's `--api-key` guards (`serve/middleware/authenticate.py`); `/health`, `/reset_prefix_cache`
and the rest are open."""


class EngineFlavor(StrEnum):
    VLLM = "vllm"
    SGLANG = "sglang"


@dataclass(frozen=True, slots=True)
class LoadedAdapter:
    name: str
    path: str
    """The `lora_path` as it was given (vLLM lists it as `root`)."""
    int_id: int
    fingerprint: str = ""
    """What was read from the adapter's directory, the last time the engine read it."""
    load_inplace: bool = False
    """Kept from the load request, as vLLM keeps it in its `LoRARequest`: every later request re-reads."""


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    status: int | None
    """None when the connection was dropped without an answer."""


class SimulatedEngine:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        flavor: EngineFlavor | str = EngineFlavor.VLLM,
        api_key: str | None = None,
        served_model_name: str = "tiny",
        model_path: str | None = None,
        max_model_len: int = 256,
        max_lora_rank: int = 16,
        max_loras: int = 1,
        max_cpu_loras: int | None = None,
        max_adapters: int | None = None,
        hub: Mapping[str, str | os.PathLike[str]] | None = None,
        dev_mode: bool = False,
        prefix_caching: bool = True,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        if max_adapters is not None and max_adapters < 1:
            raise ValueError("max_adapters must be at least 1, or None for no limit")
        if max_loras < 1:
            raise ValueError("max_loras must be at least 1")
        if max_cpu_loras is not None and max_cpu_loras < max_loras:
            raise ValueError("max_cpu_loras must be at least max_loras")  # vLLM refuses to start too
        self.host = host
        self.port = port
        self.flavor = EngineFlavor(flavor)
        self.api_key = api_key
        self.served_model_name = served_model_name
        self.model_path = model_path or f"/models/{served_model_name}"
        self.max_model_len = max_model_len
        self.max_lora_rank = max_lora_rank
        self.max_loras = max_loras
        """vLLM's `--max-loras`: adapters one batch can use (GPU slots); reported as `max_lora` in /metrics."""
        self.max_cpu_loras = max_cpu_loras
        """vLLM's `--max-cpu-loras`: adapters the worker's LRU cache holds. vLLM's default is `max_loras`; here
        None keeps every adapter resident, so that tests that do not care never see a re-admission."""
        self.max_adapters = max_adapters
        """Not vLLM: the most adapters registered at once; a load beyond answers the worker's 500."""
        self.hub = {repo: str(path) for repo, path in (hub or {}).items()}
        """Hugging Face repository ids this engine can "download" (to local adapter directories); vLLM on this
        machine is offline, so any other repository id is not found."""
        self.dev_mode = dev_mode
        """vLLM's `VLLM_SERVER_DEV_MODE=1`: serve `POST /reset_prefix_cache` (its other development routes,
        `/sleep`, `/collective_rpc`, ..., are not simulated)."""
        self.prefix_cache = PrefixCache(block_size=block_size, enabled=prefix_caching)
        self.inplace_reads = 0
        """How often a completion re-read an adapter loaded with `load_inplace`."""
        self.readmissions = 0
        """How often a completion read an evicted adapter back into the worker's cache."""
        self.metrics = EngineMetrics(model_name=served_model_name, max_loras=max_loras)
        self.faults = FaultPlan()
        self.calls: list[Call] = []
        self._adapters: dict[str, LoadedAdapter] = {}
        self._cache: OrderedDict[int, str] = OrderedDict()
        """The worker's LRU cache: int id -> adapter name, least recently used first (unloaded copies too)."""
        self._next_int_id = 1
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.restarts = 0

    def __repr__(self) -> str:
        return f"<SimulatedEngine {self.flavor} {self.base_url} adapters={sorted(self._adapters)}>"

    # --- the in-process API ------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def adapters(self) -> dict[str, LoadedAdapter]:
        """The registered adapters, in the order `/v1/models` lists them (resident or not)."""
        return dict(self._adapters)

    @property
    def resident(self) -> tuple[str, ...]:
        """The registered adapters whose weights are in the worker's cache, least recently used first."""
        registered = {a.int_id: a.name for a in self._adapters.values()}
        return tuple(registered[int_id] for int_id in self._cache if int_id in registered)

    @property
    def cached_copies(self) -> int:
        """Adapter copies in the worker's cache, those of unloaded adapters included."""
        return len(self._cache)

    @property
    def running(self) -> bool:
        return self._site is not None

    async def start(self) -> SimulatedEngine:
        if self._runner is not None:
            raise RuntimeError(f"{self!r} is already started")
        from modeladapter.sandbox.engine.http_app import EngineApp  # it imports this module's types

        app = EngineApp(self).application()
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.25)
        await runner.setup()
        self._runner = runner
        try:
            await self.accept_connections()
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        runner, self._runner, self._site = self._runner, None, None
        if runner is not None:
            await runner.cleanup()

    async def refuse_connections(self) -> None:
        """Close the listening socket: new connections are refused until `accept_connections()`."""
        site, self._site = self._site, None
        if site is not None:
            await site.stop()

    async def accept_connections(self) -> None:
        if self._runner is None:
            raise RuntimeError(f"{self!r} is not started")
        if self._site is not None:
            return
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self._site = site
        if self.port == 0:  # an ephemeral port: keep it, so a restart comes back on the same address
            self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    async def restart(self, *, downtime: float = 0.0) -> None:
        """Like a container restart: connections are refused for `downtime` seconds and every adapter is gone."""
        await self.refuse_connections()
        self.forget_everything()
        if downtime:
            await asyncio.sleep(downtime)
        await self.accept_connections()
        self.restarts += 1

    def forget_everything(self) -> None:
        """What a stopped container loses: every registration, every cached copy, the prefix cache, /metrics."""
        self._adapters.clear()
        self._cache.clear()
        self.prefix_cache.clear()
        self.metrics.forget_series()

    def reset_prefix_cache(self, *, reset_running_requests: bool = False, reset_external: bool = False) -> bool:
        """vLLM's `reset_prefix_cache`: drop every cached block; False while running requests hold blocks,
        unless `reset_running_requests` preempts them. There is no external (connector) cache to reset."""
        del reset_external  # without a KV connector vLLM treats it as done
        return self.prefix_cache.reset(reset_running_requests=reset_running_requests)

    def inject(self, fault: Fault, *, route: Route | str = Route.ANY, times: int | None = 1) -> None:
        """Apply `fault` to the next `times` requests to `route` (None: every request until `clear_faults`)."""
        self.faults.add(fault, route=route, times=times)

    def clear_faults(self) -> None:
        self.faults.clear()

    def evict(self, name: str) -> bool:
        """vLLM's LRU eviction of `name` from the worker's cache, now: it stays registered and listed, and its
        next request reads it from its path again. True if it was resident."""
        adapter = self._adapters.get(name)
        return adapter is not None and self._cache.pop(adapter.int_id, None) is not None

    def unload_by_another_client(self, name: str) -> bool:
        """What an unload request from someone else does (any holder of an API key may unload in vLLM): the
        name leaves `/v1/models`. True if it was registered."""
        return self.unload(name).status == 200

    # --- the engine's behaviour, without HTTP (also used by the runtime sidecar) ---------------------------

    def load(self, name: str, lora_path: str, *, load_inplace: bool = False) -> Reply:
        if self.flavor is EngineFlavor.SGLANG:
            return self._sglang_load(name, lora_path)
        if not name or not lora_path:
            return wire.vllm_error(texts.BOTH_REQUIRED, "InvalidUserInput", 400)
        if name == self.served_model_name:
            return wire.vllm_error(texts.conflicts_with_base(name), "InvalidUserInput", 400)
        if name in self._adapters and not load_inplace:
            return wire.vllm_error(texts.already_loaded(name), "InvalidUserInput", 400)
        adapter = self._read_adapter(name, lora_path)
        if isinstance(adapter, Reply):
            return adapter
        if name not in self._adapters and not self._has_room():
            return wire.vllm_error(
                texts.add_lora_failed(f"No free LoRA slot: {self.max_adapters} adapters are loaded (simulated)"),
                "InternalServerError",
                500,
            )
        previous = self._adapters.get(name)
        int_id = previous.int_id if previous is not None else self._take_int_id()
        self._adapters[name] = LoadedAdapter(name, lora_path, int_id, adapter.fingerprint, load_inplace)
        self._admit(int_id, name)  # vLLM's add_lora reads the weights and activates them at once
        return Reply(200, texts.loaded_text(name), None)

    def unload(self, name: str) -> Reply:
        if self.flavor is EngineFlavor.SGLANG:
            return self._sglang_unload(name)
        if not name:
            return wire.vllm_error(texts.UNLOAD_NAME_REQUIRED, "InvalidUserInput", 400)
        if name not in self._adapters:
            return wire.vllm_error(texts.cannot_be_found(name), "NotFoundError", 404)
        del self._adapters[name]  # only the name: vLLM 0.32 leaves the weights cached under the old int id
        return Reply(200, texts.unloaded_text(name), None)

    def models(self) -> Reply:
        created = int(time.time())
        salt = f"{self.host}:{self.port}:{self.restarts}"
        cards = [
            texts.model_card(model_id=self.served_model_name, root=self.model_path, parent=None,
                             max_model_len=self.max_model_len, created=created, salt=salt)
        ]  # fmt: skip
        cards += [
            texts.model_card(model_id=a.name, root=a.path, parent=self.served_model_name, max_model_len=None,
                             created=created, salt=salt)
            for a in self._adapters.values()
        ]  # fmt: skip
        return Reply(200, texts.dumps({"object": "list", "data": cards}), texts.JSON)

    def complete(self, model: str, prompt: str, max_tokens: int) -> Reply:
        if model != self.served_model_name and model not in self._adapters:
            message = texts.model_does_not_exist(model, [self.served_model_name])
            return Reply(404, texts.error_body(message, "NotFoundError", 404, "model"), texts.JSON)
        with self.metrics.request(model):
            weights, lora = self._weights(model)
            if weights is None:
                return wire.vllm_error(texts.ENGINE_CORE_FAILED, "InternalServerError", 500)
            if self.flavor is EngineFlavor.VLLM:
                weights = self.prefix_cache.use(lora, prompt.split(), weights).weights
        text = texts.completion_text(weights, prompt, max_tokens)
        body = texts.completion_body(model=model, text=text, prompt_tokens=max(1, len(prompt.split())),
                                     completion_tokens=max_tokens, created=int(time.time()))  # fmt: skip
        return Reply(200, body, texts.JSON)

    def _weights(self, model: str) -> tuple[str | None, LoraKey | None]:
        """The weights a request for `model` computes with, before the prefix cache has its say (None: they no
        longer load), and its LoRA key in that cache."""
        if model == self.served_model_name:
            return self.model_path, None
        adapter = self._adapters[model]
        if self.flavor is EngineFlavor.SGLANG:
            self._admit(adapter.int_id, model)
            return adapter.path, None  # SGLang stays as simulated before: by path, without a prefix cache
        if adapter.load_inplace or adapter.int_id not in self._cache:
            # vLLM's worker reads the adapter from its path whenever a batch uses it and it is not cached (it was
            # evicted), and every time if its request says `load_inplace` (`lora/worker_manager.py`,
            # `add_adapter`; vllm #33791). If the directory no longer loads, the real engine core fails, and the
            # request gets its generic 500.
            if adapter.load_inplace:
                self.inplace_reads += 1
            else:
                self.readmissions += 1
            read = self._read_adapter(adapter.name, adapter.path)
            if isinstance(read, Reply):
                return None, None
            adapter = self._adapters[model] = replace(adapter, fingerprint=read.fingerprint)
        self._admit(adapter.int_id, model)
        return adapter.fingerprint, LoraKey(adapter.name, adapter.path)

    def _read_adapter(self, name: str, lora_path: str) -> PeftAdapter | Reply:
        """What the worker reads from `lora_path`, or vLLM's refusal."""
        directory = self._resolve(lora_path)
        try:
            adapter = read_peft_adapter(directory) if directory is not None else None
        except BrokenAdapterConfig as error:
            return wire.vllm_error(texts.add_lora_failed(str(error)), "InternalServerError", 500)
        if adapter is None:
            return wire.vllm_error(texts.no_adapter_found(name, lora_path), "NotFoundError", 404)
        problems = texts.peft_problems(rank=adapter.rank, max_lora_rank=self.max_lora_rank, bias=adapter.bias)
        if problems is not None:
            return wire.vllm_error(texts.add_lora_failed(problems), "InternalServerError", 500)
        return adapter

    def _resolve(self, lora_path: str) -> str | None:
        """vLLM's `get_adapter_absolute_path`: a local path if there is one, else a hub download."""
        expanded = os.path.expanduser(lora_path)
        if os.path.isabs(expanded) or os.path.exists(expanded):
            return os.path.abspath(expanded)
        return self.hub.get(lora_path)

    def _has_room(self) -> bool:
        """Below the test device `max_adapters` (registrations, not residency)."""
        return self.max_adapters is None or len(self._adapters) < self.max_adapters

    def _admit(self, int_id: int, name: str) -> None:
        """The adapter is used now: most recently used in the cache, which evicts beyond `max_cpu_loras`."""
        self._cache[int_id] = name
        self._cache.move_to_end(int_id)
        while self.max_cpu_loras is not None and len(self._cache) > self.max_cpu_loras:
            self._cache.popitem(last=False)

    def _take_int_id(self) -> int:
        self._next_int_id += 1
        return self._next_int_id - 1

    # --- SGLang's answers ----------------------------------------------------------------------------------

    def _sglang_load(self, name: str, lora_path: str) -> Reply:
        if name in self._adapters:
            return self._sglang_reply(False, f"Failed to load LoRA adapter {name} because it is already loaded")
        directory = self._resolve(lora_path)
        try:
            adapter = read_peft_adapter(directory) if directory is not None else None
        except BrokenAdapterConfig as error:
            return self._sglang_reply(False, str(error))
        if adapter is None:
            return self._sglang_reply(False, f"Can't find 'adapter_config.json' at '{lora_path}'")
        if adapter.rank > self.max_lora_rank:
            return self._sglang_reply(
                False,
                f"LoRA adapter {name} with rank {adapter.rank} is incompatible with the current LoRA memory pool "
                "configuration. Please ensure that the LoRA adapter's rank is within the configured "
                "`--max-lora-rank` and that the target modules are included in `--lora-target-modules`.",
            )
        if not self._has_room():
            return self._sglang_reply(False, f"Failed to load LoRA adapter {name}: no free LoRA slot (simulated)")
        loaded = self._adapters[name] = LoadedAdapter(name, lora_path, self._take_int_id(), adapter.fingerprint)
        self._admit(loaded.int_id, name)
        return self._sglang_reply(True, None)

    def _sglang_unload(self, name: str) -> Reply:
        if name not in self._adapters:
            keys = ", ".join(repr(n) for n in self._adapters)
            return self._sglang_reply(False, f"LoRA with name {name} does not exist. Loaded LoRAs: dict_keys([{keys}])")
        unloaded = self._adapters.pop(name)
        self._cache.pop(unloaded.int_id, None)  # SGLang frees the weights on unload
        return self._sglang_reply(True, None)

    def _sglang_reply(self, success: bool, error: str | None) -> Reply:
        loaded = {a.name: a.path for a in self._adapters.values()}
        body = texts.dumps({"success": success, "error_message": error, "loaded_adapters": loaded})
        return Reply(200 if success else 400, body, texts.JSON)
