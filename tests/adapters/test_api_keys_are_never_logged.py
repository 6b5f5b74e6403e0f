"""API keys travel only in the Authorization header: with every logger at DEBUG (ours, httpx's, httpcore's,
aiohttp's), through successes, refusals, timeouts and unreachable engines, no log line, error message or repr
holds the key."""

from __future__ import annotations

import logging

import pytest

from modeladapter.adapters.base import LoadRequest
from modeladapter.adapters.connections import EngineConnections
from modeladapter.adapters.outcomes import EngineError, EngineTimeout, EngineUnavailable, Unauthorized
from modeladapter.adapters.selection import EngineKind, EngineTarget
from modeladapter.sandbox.engine import Fault, SimulatedEngine
from tests.adapters.conftest import Adapters

KEY = "s3cr3t-engine-key"
WRONG_KEY = "wr0ng-but-still-secret"
LOGGERS = ("", "modeladapter", "modeladapter.adapters", "httpx", "httpcore", "aiohttp", "asyncio")


async def test_no_log_line_error_or_repr_ever_holds_the_key(
    keyed_vllm: SimulatedEngine, adapters: Adapters, caplog: pytest.LogCaptureFixture
) -> None:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    target = EngineTarget(EngineKind.VLLM, keyed_vllm.host, keyed_vllm.port)
    seen: list[str] = []
    async with EngineConnections(total_timeout=0.3) as connections:
        client = connections.client(target, api_key=KEY)
        seen.append(repr(client))
        await client.load(LoadRequest("sql-lora", adapters.a, additional_config={"api-key": KEY}))
        await client.verify("sql-lora", adapters.a)
        await client.complete("sql-lora", "Hello")
        await client.unload("sql-lora")
        await client.unload("sql-lora")
        failures: list[EngineError] = []
        wrong = connections.client(target, api_key=WRONG_KEY)
        with pytest.raises(Unauthorized) as unauthorized:
            await wrong.load(LoadRequest("sql-lora", adapters.a))
        failures.append(unauthorized.value)
        keyed_vllm.inject(Fault(delay=1.0), route="load")
        with pytest.raises(EngineTimeout) as timeout:
            await client.load(LoadRequest("sql-lora", adapters.a))
        failures.append(timeout.value)
        await keyed_vllm.refuse_connections()
        with pytest.raises(EngineUnavailable) as unreachable:
            await client.load(LoadRequest("sql-lora", adapters.a))
        failures.append(unreachable.value)
    seen += [str(f) for f in failures] + [repr(f) for f in failures] + [repr(f.__cause__) for f in failures]
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert logged, "nothing was captured: the test would prove nothing"
    assert "POST http://127.0.0.1" in logged  # httpx's own request lines were captured
    for secret in (KEY, WRONG_KEY):
        assert secret not in logged
        assert not [text for text in seen if secret in text]


def test_a_load_request_hides_credentials_and_config_from_repr() -> None:
    request = LoadRequest("sql", "s3://b/k", credentials={"aws_secret_access_key": KEY},
                          additional_config={"api-key": KEY})  # fmt: skip
    assert KEY not in repr(request) and KEY not in str(request)
