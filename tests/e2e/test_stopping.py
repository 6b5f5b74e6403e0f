"""A stop is clean and bounded: every step is timed in the log, and a step that hangs is named and left behind."""

from __future__ import annotations

import asyncio
import logging

import pytest

from modeladapter.adapters.connections import EngineConnections
from modeladapter.operator.controller import running
from modeladapter.operator.controller.running import Operator
from tests.e2e.conftest import Sandbox, adapter_manifest
from tests.e2e.test_outages import fast_settings


async def test_a_stop_while_adapters_are_reconciled_ends_at_once_and_says_what_each_step_took(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=running.__name__)
    await sandbox.add_pods(2)
    operator = Operator(fast_settings(sandbox, sandbox.database_url), probes=False)
    task = asyncio.create_task(operator.run())
    await sandbox.apply(adapter_manifest(replicas=2))
    await sandbox.phase("Running")
    operator.stop("the test asked")
    async with asyncio.timeout(running.STOP_STEP_SECONDS):
        assert await task == 0
    messages = [record.getMessage() for record in caplog.records if record.name == running.__name__]
    assert "stopping: the test asked" in messages
    summary = next(message for message in messages if message.startswith("stopped in "))
    for step in ("engine connections", "event log", "API connections"):
        assert step in summary


async def test_a_stop_step_that_hangs_is_named_with_the_stacks_and_the_stop_goes_on(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def never_closes(self: EngineConnections) -> None:
        await asyncio.Event().wait()

    caplog.set_level(logging.INFO, logger=running.__name__)
    monkeypatch.setattr(running, "STOP_STEP_SECONDS", 0.3)
    monkeypatch.setattr(EngineConnections, "aclose", never_closes)
    await sandbox.add_pods(1)
    operator = Operator(fast_settings(sandbox, sandbox.database_url), probes=False)
    task = asyncio.create_task(operator.run())
    await sandbox.eventually(lambda: _ready(operator), what="readiness")
    operator.stop()
    async with asyncio.timeout(5):
        assert await task == 0
    hung = next(r for r in caplog.records if "engine connections did not finish within" in r.getMessage())
    assert hung.levelno == logging.ERROR
    assert "never_closes" in hung.getMessage()  # the stuck task's stack points at the culprit
    assert any(r.getMessage().startswith("stopped in ") for r in caplog.records)


async def _ready(operator: Operator) -> bool:
    return operator.ready() is True
