"""Many simulated engines in one process, one per loopback address: 127.0.0.2, 127.0.0.3, ... port 8000.

This is what `modeladapter sandbox` and the operator's end-to-end tests run: every emulated pod gets its own
IP, as in a cluster, and the same port.

    async with EngineFleet(3, api_key="k") as fleet:
        fleet.engines[0].base_url          # http://127.0.0.2:8000
        fleet.by_ip["127.0.0.3"].inject(Fault(status=503), route="load")
"""

from __future__ import annotations

import ipaddress
from types import TracebackType
from typing import Any

from modeladapter.sandbox.engine.server import SimulatedEngine


def loopback_addresses(count: int, *, first: str = "127.0.0.2") -> list[str]:
    """`count` consecutive loopback addresses from `first` (127.0.0.1 is left to everything else)."""
    start = ipaddress.IPv4Address(first)
    addresses = [str(start + offset) for offset in range(count)]
    if count and not ipaddress.IPv4Address(addresses[-1]).is_loopback:
        raise ValueError(f"{count} addresses from {first} leave the loopback range 127.0.0.0/8")
    return addresses


class EngineFleet:
    def __init__(self, count: int, *, port: int = 8000, first_ip: str = "127.0.0.2", **engine_options: Any) -> None:
        if count < 0:
            raise ValueError("a fleet cannot have a negative number of engines")
        self.engines = [SimulatedEngine(ip, port, **engine_options) for ip in loopback_addresses(count, first=first_ip)]

    @property
    def by_ip(self) -> dict[str, SimulatedEngine]:
        return {engine.host: engine for engine in self.engines}

    async def start(self) -> EngineFleet:
        try:
            for engine in self.engines:
                await engine.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        for engine in self.engines:
            await engine.stop()

    async def __aenter__(self) -> EngineFleet:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
