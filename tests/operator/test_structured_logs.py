"""The operator's log lines: one JSON object per line tagged with the adapter being reconciled, readable text
for humans, and secrets masked whatever the code logged."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import pytest

from modeladapter.operator.controller.logs import (
    current_log_context,
    log_context,
    make_handler,
    redact,
)
from modeladapter.operator.controller.settings import LogFormat

log = logging.getLogger("modeladapter.operator.test")


def test_a_json_line_has_time_level_logger_and_message(capture: Any) -> None:
    out = capture("json")
    log.info("loaded %s on %s", "qwen-code-lora", "pod-0")
    (line,) = out.lines()
    record = json.loads(line)
    assert record["level"] == "INFO"
    assert record["logger"] == "modeladapter.operator.test"
    assert record["message"] == "loaded qwen-code-lora on pod-0"
    assert record["time"].endswith("Z") and "T" in record["time"]
    assert set(record) == {"time", "level", "logger", "message"}


def test_the_log_context_tags_every_line_inside_it(capture: Any) -> None:
    out = capture("json")
    with log_context(adapter="qwen-code-lora", namespace="default", uid="5e1c", reconcile_id="r-17"):
        log.info("reconciling")
    log.info("idle")
    inside, outside = out.records()
    assert {key: inside[key] for key in ("adapter", "namespace", "uid", "reconcile_id")} == {
        "adapter": "qwen-code-lora",
        "namespace": "default",
        "uid": "5e1c",
        "reconcile_id": "r-17",
    }
    assert not {"adapter", "namespace", "uid", "reconcile_id"} & set(outside)


def test_a_nested_context_overrides_only_what_it_names() -> None:
    with log_context(adapter="a", namespace="default", uid="u1", reconcile_id="r1"):
        with log_context(reconcile_id="r2"):
            assert current_log_context() == {"adapter": "a", "namespace": "default", "uid": "u1", "reconcile_id": "r2"}
        assert current_log_context()["reconcile_id"] == "r1"
    assert current_log_context() == {}


async def test_concurrent_workers_keep_their_own_context(capture: Any) -> None:
    out = capture("json")

    async def worker(name: str) -> None:
        with log_context(adapter=name, namespace="default", reconcile_id=f"r-{name}"):
            for step in range(3):
                await asyncio.sleep(0)
                log.info("step %d", step)

    await asyncio.gather(worker("a"), worker("b"))
    records = out.records()
    assert len(records) == 6
    assert all(r["adapter"] == r["reconcile_id"][2:] for r in records)


def test_extra_fields_are_written_and_exceptions_are_one_field(capture: Any) -> None:
    out = capture("json")
    try:
        raise ConnectionRefusedError("engine at 10.0.0.7:8000 refused")
    except ConnectionRefusedError:
        log.warning("load failed", extra={"pod": "pod-0", "attempt": 2}, exc_info=True)
    (record,) = out.records()
    assert (record["pod"], record["attempt"]) == ("pod-0", 2)
    assert record["exception"].startswith("Traceback") and "engine at 10.0.0.7:8000 refused" in record["exception"]
    assert len(out.lines()) == 1  # the traceback stays inside the one JSON line


def test_the_level_filters_lines(capture: Any) -> None:
    out = capture("json", level="WARNING")
    log.info("chatter")
    log.warning("worth a look")
    assert [r["message"] for r in out.records()] == ["worth a look"]


def test_text_lines_are_for_humans(capture: Any) -> None:
    out = capture("text")
    with log_context(adapter="qwen-code-lora", namespace="default", reconcile_id="r-17"):
        log.info("loaded", extra={"pod": "pod-0", "attempt": None})
    (line,) = out.lines()
    time, rest = line.split(" ", 1)
    assert time.endswith("Z")
    # `attempt=None` says nothing: a text line leaves a field without a value out.
    assert rest == "INFO  modeladapter.operator.test [default/qwen-code-lora reconcile=r-17] loaded pod=pod-0"


def test_configuring_twice_replaces_the_operators_handler(capture: Any) -> None:
    first = capture("json")
    second = capture("text")
    log.info("once")
    assert first.lines() == []
    assert len(second.lines()) == 1


SECRETS = [
    pytest.param("Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl", "Authorization: Bearer ***", id="bearer-jwt"),
    pytest.param("headers={'Authorization': 'bearer sk-live-1234'}", "headers={'Authorization': 'bearer ***'}", id="bearer-in-dict"),
    pytest.param("postgresql://modeladapter:s3cr3t@db:5432/events", "postgresql://modeladapter:***@db:5432/events", id="postgres-url"),
    pytest.param("postgresql+asyncpg://u:p@ss:w0rd@db/events", "postgresql+asyncpg://u:***@db/events", id="at-in-password"),
    pytest.param("additionalConfig {'api-key': 'sk-abc'}", "additionalConfig {'api-key': '***'}", id="api-key"),
    pytest.param("sqlite+aiosqlite:///.modeladapter/events.db", "sqlite+aiosqlite:///.modeladapter/events.db", id="no-password"),
    pytest.param("http://10.0.0.7:8000/v1/models", "http://10.0.0.7:8000/v1/models", id="host-port-is-not-a-password"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "masked"), SECRETS)
def test_redaction_masks_tokens_keys_and_url_passwords(text: str, masked: str) -> None:
    assert redact(text) == masked


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_secrets_never_reach_the_output(capture: Any, fmt: LogFormat) -> None:
    out = capture(fmt)
    with log_context(adapter="a", namespace="default"):
        log.info("calling %s with Bearer %s", "http://10.0.0.7:8000", "tok-123456")
        log.info(
            "event log at postgresql://ma:hunter2@db/events", extra={"headers": {"Authorization": "Bearer tok-654321"}}
        )
        try:
            raise ValueError("could not connect to postgresql://ma:hunter2@db/events")
        except ValueError:
            log.exception("append failed")
    written = out.stream.getvalue()
    for secret in ("tok-123456", "tok-654321", "hunter2"):
        assert secret not in written
    assert written.count("***") >= 4


def test_a_broken_log_call_neither_raises_nor_leaks(capsys: pytest.CaptureFixture[str]) -> None:
    isolated = logging.getLogger("modeladapter.operator.test.isolated")  # away from pytest's own handlers
    isolated.propagate = False
    handler = make_handler(fmt="json", stream=io.StringIO())
    isolated.addHandler(handler)
    token = "-".join(["tok", "987654"])  # built at run time: the reported traceback quotes this source line
    try:
        isolated.error("attempt %d", f"Bearer {token}")  # wrong type for %d: logging reports it on stderr
    finally:
        isolated.removeHandler(handler)
    reported = capsys.readouterr().err
    assert "Logging error" in reported
    assert "tok-987654" not in reported
