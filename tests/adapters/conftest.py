"""Fixtures for the engine-client tests: PEFT adapter directories, simulated engines on loopback, and the
shared connections the clients are made from."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import pytest

from modeladapter.adapters.base import EngineClient
from modeladapter.adapters.connections import EngineConnections
from modeladapter.adapters.selection import EngineKind, EngineTarget
from modeladapter.sandbox.engine import SimulatedEngine, write_peft_adapter


class ClientFactory(Protocol):
    def __call__(
        self, engine: SimulatedEngine, *, api_key: str | None = None, kind: EngineKind | None = None
    ) -> EngineClient: ...


class Adapters:
    """PEFT adapter directories on disk, as a pod would have them mounted."""

    def __init__(self, root: Path) -> None:
        self.a = str(write_peft_adapter(root / "lora-a"))
        self.b = str(write_peft_adapter(root / "lora-b"))
        self.rank16 = str(write_peft_adapter(root / "lora-r16", rank=16))
        self.bias = str(write_peft_adapter(root / "lora-bias", bias="all"))
        self.missing = str(root / "no-such-adapter")
        self.not_an_adapter = str(root)


@pytest.fixture
def adapters(tmp_path: Path) -> Adapters:
    return Adapters(tmp_path)


@pytest.fixture
async def connections() -> AsyncIterator[EngineConnections]:
    async with EngineConnections() as shared:
        yield shared


async def started(engine: SimulatedEngine) -> AsyncIterator[SimulatedEngine]:
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


@pytest.fixture
async def vllm() -> AsyncIterator[SimulatedEngine]:
    """A simulated vLLM on 127.0.0.1 (an ephemeral port) with --max-lora-rank 8."""
    async for engine in started(SimulatedEngine("127.0.0.1", 0, max_lora_rank=8)):
        yield engine


@pytest.fixture
async def keyed_vllm() -> AsyncIterator[SimulatedEngine]:
    """A simulated vLLM started with --api-key s3cr3t-engine-key."""
    async for engine in started(SimulatedEngine("127.0.0.1", 0, max_lora_rank=8, api_key="s3cr3t-engine-key")):
        yield engine


@pytest.fixture
async def sglang() -> AsyncIterator[SimulatedEngine]:
    async for engine in started(SimulatedEngine("127.0.0.1", 0, flavor="sglang", max_lora_rank=8)):
        yield engine


@pytest.fixture
def client_for(connections: EngineConnections) -> ClientFactory:
    """Make the engine client the operator would use for a simulated engine."""

    def make(engine: SimulatedEngine, *, api_key: str | None = None, kind: EngineKind | None = None) -> EngineClient:
        if kind is None:
            kind = EngineKind.SGLANG if engine.flavor == "sglang" else EngineKind.VLLM
        return connections.client(EngineTarget(kind, engine.host, engine.port), api_key=api_key)

    return make
