"""Fixtures for the simulated-engine tests: an engine on an ephemeral loopback port, a raw HTTP client to
poke it with, and PEFT adapter directories."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from modeladapter.sandbox.engine import SimulatedEngine, write_peft_adapter


@pytest.fixture
async def engine() -> AsyncIterator[SimulatedEngine]:
    """A simulated vLLM 0.32 (--max-lora-rank 8) on 127.0.0.1 and an ephemeral port."""
    started = await SimulatedEngine("127.0.0.1", 0, max_lora_rank=8).start()
    yield started
    await started.stop()


@pytest.fixture
async def http(engine: SimulatedEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=5) as client:
        yield client


@pytest.fixture
def lora(tmp_path: Path) -> Path:
    """A rank-8 PEFT adapter directory."""
    return write_peft_adapter(tmp_path / "lora-a")
