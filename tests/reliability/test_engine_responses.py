"""Malformed engine answers are typed errors, within the time limit and in bounded memory: never a crash or a hang.

An engine is whatever listens at a pod's IP, so the operator must survive anything a broken or hostile HTTP
server can say. `BadEngine` is a raw TCP server on a loopback address of its own that answers every request as
its behaviour says: non-JSON, JSON of the wrong shape, nesting too deep to parse, a body that does not
decompress, a gzip bomb, 10 MB with or without a Content-Length, a chunked body that never ends, a slow-loris
trickle (headers, then one byte a second), no answer at all, a truncated answer, something that is not HTTP,
a redirect towards a bait server.

Three levels:

* the pure readers (`modeladapter.adapters.answers`, `parse_completion`, SGLang's success check), fuzzed with
  hypothesis: any text and any status give an `EngineModels`, an `ErrorBody` or an `EngineError`, nothing else;
* the engine client (`EngineConnections` with a 1.5 s limit) against each behaviour: the expected
  `EngineError` subclass, within the limit, and at most a few MiB of memory for the endless and 10 MB bodies
  (answers are read up to `MAX_RESPONSE_BYTES`, 4 MiB);
* the whole operator, in process, with one pod per behaviour: every adapter ends `Failed` with the error kind in
  its `Ready` condition, no reconcile raises (`controller.errors == 0`), and an adapter on a healthy engine
  stays `Running` throughout.

Findings this file pinned (fixed in `adapters/`): the client read answers without any size limit (an endless
chunked answer grew the operator by about 400 MB a second until the 30 s limit); a body that did not
decompress escaped as `httpx.DecodingError`, and JSON nested too deep as `RecursionError`, both outside the
taxonomy, so the reconcile raised and was retried for ever instead of recording a failure.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from modeladapter.adapters.answers import MAX_MESSAGE, ErrorBody, interpret_failure, parse_error_body, parse_models
from modeladapter.adapters.base import LoadRequest, parse_completion
from modeladapter.adapters.connections import MAX_RESPONSE_BYTES, EngineConnections
from modeladapter.adapters.outcomes import (
    EngineError,
    EngineModels,
    EngineRejected,
    EngineTimeout,
    EngineUnavailable,
    InvalidRequest,
    LoadOutcome,
    ProtocolError,
)
from modeladapter.adapters.selection import EngineKind, EngineTarget
from modeladapter.adapters.sglang import _expect_success
from modeladapter.operator.kube.client import MODELADAPTERS
from tests.e2e.conftest import ARTIFACT, FAST, Sandbox, adapter_manifest
from tests.reliability.conftest import open_world, random_loopback_block

TOTAL = 1.5
"""The client's whole-call limit in these tests (the operator's default is 30 s)."""
SLACK = 2.0

# --- a server that answers badly ----------------------------------------------------------------------------

Behaviour = Callable[[str, str, asyncio.StreamWriter], Awaitable[None]]


async def respond(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    length: int | None = None,
) -> None:
    """A complete HTTP/1.1 answer, the body written in 64 KiB slices (so the server's own memory stays small)."""
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body) if length is None else length}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {"Content-Type": "application/json"}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    view = memoryview(body)
    for start in range(0, len(body), 65536):
        writer.write(view[start : start + 65536])
        await writer.drain()
    await writer.drain()


async def chunked(
    writer: asyncio.StreamWriter,
    chunks: Callable[[], Awaitable[bytes | None]],
    *,
    content_type: str = "application/json",
) -> None:
    """Headers with `Transfer-Encoding: chunked`, then chunks until `chunks()` returns None (or for ever)."""
    writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    await writer.drain()
    while (data := await chunks()) is not None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()


def static(status: int, body: bytes | str, **headers: str) -> Behaviour:
    raw = body.encode() if isinstance(body, str) else body

    async def behave(method: str, path: str, writer: asyncio.StreamWriter) -> None:
        await respond(writer, status, raw, headers=headers or None)

    return behave


def only_models(models: Behaviour) -> Behaviour:
    """`/v1/models` as `models` says; a load or an unload is accepted as a real vLLM does (200, plain text)."""

    async def behave(method: str, path: str, writer: asyncio.StreamWriter) -> None:
        if path.endswith("/models"):
            await models(method, path, writer)
        else:
            await respond(writer, 200, b"Success: LoRA adapter added successfully.", headers={})

    return behave


BLOCK = b"x" * 65536
TEN_MB = 10 * 1000 * 1000


async def ten_mb_chunked(method: str, path: str, writer: asyncio.StreamWriter) -> None:
    sent = 0

    async def next_chunk() -> bytes | None:
        nonlocal sent
        if sent >= TEN_MB:
            return None
        sent += len(BLOCK)
        return BLOCK

    await chunked(writer, next_chunk)


async def endless(method: str, path: str, writer: asyncio.StreamWriter) -> None:
    async def next_chunk() -> bytes:
        return BLOCK

    await chunked(writer, next_chunk)


async def slow_loris(method: str, path: str, writer: asyncio.StreamWriter) -> None:
    """Headers at once, then one byte a second of a body that claims 1 MB."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
    for _ in range(600):
        writer.write(b"[")
        await writer.drain()
        await asyncio.sleep(1.0)


async def slow_loris_chunked(method: str, path: str, writer: asyncio.StreamWriter) -> None:
    async def next_chunk() -> bytes:
        await asyncio.sleep(1.0)
        return b" "

    await chunked(writer, next_chunk)


async def silence(method: str, path: str, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(600)


async def truncated(method: str, path: str, writer: asyncio.StreamWriter) -> None:
    await respond(writer, 200, b'{"data": [', length=1000)


async def not_http(method: str, path: str, writer: asyncio.StreamWriter) -> None:
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\nProtocol mismatch.\r\n")
    await writer.drain()


async def hang_up(method: str, path: str, writer: asyncio.StreamWriter) -> None:
    transport = writer.transport
    transport.abort()


def redirect_to(url: str) -> Behaviour:
    async def behave(method: str, path: str, writer: asyncio.StreamWriter) -> None:
        await respond(writer, 302, b"", headers={"Location": url + path})

    return behave


GZIP_BOMB = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)
DEEP = "[" * 50_000 + "]" * 50_000


@dataclass
class BadEngine:
    """A raw HTTP server on `host:port`: every request is recorded, then answered by `behaviour`."""

    host: str
    behaviour: Behaviour
    port: int = 8000
    requests: list[tuple[str, str]] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> BadEngine:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines if line)
            }
            await reader.readexactly(int(headers.get("content-length", "0") or 0))
            self.requests.append((method, path))
            await self.behaviour(method, path, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()


async def start_bad_engine(behaviour: Behaviour, *, host: str | None = None) -> BadEngine:
    for _ in range(20):
        try:
            return await BadEngine(host or random_loopback_block(), behaviour).start()
        except OSError:
            if host is not None:
                raise
    raise RuntimeError("no free loopback address for a bad engine")


# --- 1. the pure readers, fuzzed -----------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "data",
                    "id",
                    "root",
                    "parent",
                    "error",
                    "message",
                    "detail",
                    "type",
                    "object",
                    "success",
                    "error_message",
                    "loaded_adapters",
                    "choices",
                    "model",
                    "text",
                    "lora_path",
                ]
            )
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)
BODIES = (
    JSON.map(json.dumps)
    | st.text(max_size=200)
    | st.sampled_from(
        [
            DEEP,
            "{" * 5000,
            '{"data": ' + DEEP + "}",
            '{"detail": ' + "[" * 990 + "]" * 990 + "}",
            "",
            "null",
            "\x00",
            "\ufeff{}",
        ]
    )
)
STATUSES = st.sampled_from(
    [200, 201, 204, 301, 302, 400, 401, 403, 404, 405, 408, 409, 413, 422, 429, 500, 501, 502, 503, 504, 599]
) | st.integers(100, 999)


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=BODIES, status=STATUSES)
@example(text='{"data": 5}', status=200)
@example(text="[1, 2]", status=200)
@example(text='{"data": [null]}', status=200)
@example(text='{"error": {"message": null}}', status=500)
def test_any_answer_reads_as_a_value_or_a_typed_error(text: str, status: int) -> None:
    try:
        models = parse_models(text)
    except ProtocolError as error:
        assert len(str(error)) < 1000
    else:
        assert isinstance(models, EngineModels)
    assert isinstance(parse_error_body(text), ErrorBody)  # read whole, so that its meaning is judged on all of it
    for operation in ("load", "unload", "list"):
        failure = interpret_failure(status, text, operation=operation)
        assert isinstance(failure, EngineError)
        assert len(failure.engine_message or "") <= MAX_MESSAGE + 3, "what is shown is cut to 4 KiB"
        assert str(failure).startswith(f"{failure.kind}: {operation}: ")
        assert isinstance(failure.retriable, bool)
    try:
        parse_completion(text)
    except ProtocolError:
        pass
    try:
        _expect_success(text, operation="load")
    except ProtocolError:
        pass


# --- 2. the client against each behaviour ---------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    behaviour: Behaviour
    expected: type[EngineError]
    call: str = "list"
    """`list` (GET /v1/models) or `load` (POST /v1/load_lora_adapter)."""
    memory: bool = False
    """Check that the call stayed within a few MiB of memory."""


CASES = {
    "html-200": Case(
        static(200, "<html><body>502 Bad Gateway</body></html>", **{"Content-Type": "text/html"}), ProtocolError
    ),
    "data-is-5": Case(static(200, '{"data": 5}'), ProtocolError),
    "a-list": Case(static(200, "[1, 2, 3]"), ProtocolError),
    "null": Case(static(200, "null"), ProtocolError),
    "null-entry": Case(static(200, '{"object": "list", "data": [null]}'), ProtocolError),
    "id-not-a-string": Case(static(200, '{"data": [{"id": 5}]}'), ProtocolError),
    "nested-too-deep": Case(static(200, DEEP), ProtocolError),
    "not-utf8": Case(static(200, b'\xff\xfe\x00{"data": []}'), ProtocolError),
    "gzip-garbage": Case(
        static(200, b"this is not gzip", **{"Content-Encoding": "gzip", "Content-Type": "application/json"}),
        ProtocolError,
    ),
    "gzip-bomb": Case(
        static(200, GZIP_BOMB, **{"Content-Encoding": "gzip", "Content-Type": "application/json"}),
        ProtocolError,
        memory=True,
    ),
    "10MB-with-length": Case(static(200, b" " * TEN_MB), ProtocolError, memory=True),
    "10MB-chunked": Case(ten_mb_chunked, ProtocolError, memory=True),
    "chunked-for-ever": Case(endless, ProtocolError, memory=True),
    "slow-loris": Case(slow_loris, EngineTimeout),
    "slow-loris-chunked": Case(slow_loris_chunked, EngineTimeout),
    "no-answer": Case(silence, EngineTimeout),
    "truncated": Case(truncated, EngineUnavailable),
    "not-http": Case(not_http, EngineUnavailable),
    "hang-up": Case(hang_up, EngineUnavailable),
    "status-999": Case(static(999, '{"error": "what"}'), EngineRejected),
    "huge-header": Case(static(200, "{}", **{"X-Junk": "j" * 200_000}), EngineUnavailable),
    "load-500-null-message": Case(static(500, '{"error": {"message": null, "type": 7}}'), EngineError, call="load"),
    "load-400-error-is-a-number": Case(static(400, '{"error": 5}'), InvalidRequest, call="load"),
    "load-404-detail-is-a-list": Case(
        static(404, '{"detail": [{"loc": ["body"], "msg": 1}]}'), InvalidRequest, call="load"
    ),
    "load-500-nested-990": Case(static(500, '{"detail": ' + "[" * 990 + "]" * 990 + "}"), EngineError, call="load"),
    "load-10MB-error": Case(
        static(500, b"e" * TEN_MB, **{"Content-Type": "text/plain"}), ProtocolError, call="load", memory=True
    ),
    "load-chunked-for-ever": Case(endless, ProtocolError, call="load", memory=True),
    "load-slow-loris": Case(slow_loris, EngineTimeout, call="load"),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_the_client_turns_each_bad_answer_into_its_typed_error_in_time(name: str) -> None:
    case = CASES[name]
    engine = await start_bad_engine(case.behaviour)
    try:
        async with EngineConnections(connect_timeout=0.5, total_timeout=TOTAL) as connections:
            client = connections.client(EngineTarget(EngineKind.VLLM, engine.host, engine.port))

            async def call() -> object:
                if case.call == "load":
                    return await client.load(LoadRequest(name="qwen-code-lora", artifact_url=ARTIFACT))
                return await client.list_models()

            if case.memory:
                tracemalloc.start()
            began = time.monotonic()
            try:
                with pytest.raises(case.expected) as raised:
                    await call()
            finally:
                elapsed = time.monotonic() - began
                peak = tracemalloc.get_traced_memory()[1] if case.memory else 0
                if case.memory:
                    tracemalloc.stop()
    finally:
        await engine.stop()
    assert elapsed < TOTAL + SLACK, f"{name}: {elapsed:.1f}s"
    assert len(str(raised.value)) < 8192
    if case.memory:
        assert peak < 3 * MAX_RESPONSE_BYTES, f"{name}: {peak / 2**20:.1f} MiB held while reading the answer"
    if case.expected is ProtocolError and case.memory:
        assert "bytes" in str(raised.value) or "Content-Encoding" in str(raised.value)


async def test_an_unknown_charset_is_read_as_utf8_not_a_crash() -> None:
    body = '{"object": "list", "data": [{"id": "tiny", "root": "/models/tiny", "parent": null}]}'
    engine = await start_bad_engine(static(200, body, **{"Content-Type": "application/json; charset=klingon"}))
    try:
        async with EngineConnections(total_timeout=TOTAL) as connections:
            models = await connections.client(EngineTarget(EngineKind.VLLM, engine.host, engine.port)).list_models()
    finally:
        await engine.stop()
    assert [m.id for m in models] == ["tiny"]


async def test_a_load_answered_200_with_garbage_counts_only_once_models_lists_it() -> None:
    """The client takes vLLM's 200 at its word (its success text is not JSON anyway); the operator believes a
    load only once `/v1/models` lists it, which the operator-level test below checks."""
    engine = await start_bad_engine(only_models(static(200, '{"data": 5}')))
    try:
        async with EngineConnections(total_timeout=TOTAL) as connections:
            client = connections.client(EngineTarget(EngineKind.VLLM, engine.host, engine.port))
            loaded = await client.load(LoadRequest(name="qwen-code-lora", artifact_url=ARTIFACT))
            with pytest.raises(ProtocolError):
                await client.verify("qwen-code-lora", ARTIFACT)
    finally:
        await engine.stop()
    assert loaded.outcome is LoadOutcome.LOADED


async def test_a_redirect_is_an_error_and_is_never_followed() -> None:
    bait = await start_bad_engine(static(200, '{"object": "list", "data": []}'))
    engine = await start_bad_engine(redirect_to(bait.url))
    try:
        async with EngineConnections(total_timeout=TOTAL) as connections:
            client = connections.client(EngineTarget(EngineKind.VLLM, engine.host, engine.port))
            with pytest.raises(ProtocolError):
                await client.list_models()
            with pytest.raises(EngineError):
                await client.load(LoadRequest(name="qwen-code-lora", artifact_url=ARTIFACT))
    finally:
        await engine.stop()
        await bait.stop()
    assert engine.requests and not bait.requests


# --- 3. the whole operator -------------------------------------------------------------------------------------

OPERATOR_CASES: dict[str, tuple[Behaviour, str]] = {
    "html-200": (
        only_models(static(200, "<html>proxy error</html>", **{"Content-Type": "text/html"})),
        "ProtocolError",
    ),
    "data-is-5": (only_models(static(200, '{"data": 5}')), "ProtocolError"),
    "nested-too-deep": (only_models(static(200, DEEP)), "ProtocolError"),
    "gzip-garbage": (static(200, b"not gzip", **{"Content-Encoding": "gzip"}), "ProtocolError"),
    "gzip-bomb": (only_models(static(200, GZIP_BOMB, **{"Content-Encoding": "gzip"})), "ProtocolError"),
    "10MB-models": (only_models(static(200, b" " * TEN_MB)), "ProtocolError"),
    "chunked-for-ever": (endless, "ProtocolError"),
    "load-500-nested-990": (static(500, '{"detail": ' + "[" * 990 + "]" * 990 + "}"), "EngineRejected"),
    "load-10MB-error": (static(500, b"e" * TEN_MB, **{"Content-Type": "text/plain"}), "ProtocolError"),
    "slow-loris": (slow_loris, "Timeout"),
    "no-answer": (silence, "Timeout"),
    "not-http": (not_http, "EngineUnavailable"),
}


async def test_the_operator_records_every_bad_engine_as_a_failure_and_keeps_serving(tmp_path: Path) -> None:
    async with open_world(tmp_path, engines=1) as sandbox:
        await operator_against_bad_engines(sandbox)


async def operator_against_bad_engines(sandbox: Sandbox) -> None:
    await sandbox.add_pods(1)
    block = sandbox.fleet.engines[0].host.rsplit(".", 1)[0]
    engines: dict[str, BadEngine] = {}
    try:
        for index, (name, (behaviour, _)) in enumerate(OPERATOR_CASES.items()):
            engines[name] = await start_bad_engine(behaviour, host=f"{block}.{100 + index}")
            await sandbox.kubelet.create_pod(
                f"bad-{name.lower()}", labels={"behaviour": name.lower()}, ip=engines[name].host
            )
        operator = await sandbox.start_operator(FAST)
        operator.engines.total_timeout = 1.0
        await sandbox.apply(adapter_manifest("canary", replicas=1))
        for name in OPERATOR_CASES:
            await sandbox.apply(
                adapter_manifest(f"on-{name.lower()}", podSelector={"matchLabels": {"behaviour": name.lower()}})
            )
        for name, (_, kind) in OPERATOR_CASES.items():
            status = await sandbox.phase("Failed", f"on-{name.lower()}", timeout=30)
            ready = {c["type"]: c for c in status["conditions"]}["Ready"]
            assert ready["reason"] == "ModelAdapterLoadingError", (name, ready)
            assert f"{kind}: " in ready["message"], (name, ready["message"][:500])
            assert len(ready["message"]) <= 32768
            assert engines[name].requests, name
        assert await sandbox.ready(1, "canary")
        assert operator.controller.errors == 0, "a reconcile raised instead of recording the engine's failure"
        assert not operator.task.done()
        for event in sandbox.server.objects("v1", "Event", "default"):
            assert len(event.get("message") or "") <= 4096
        adapters = sandbox.server.objects(MODELADAPTERS.api_version, MODELADAPTERS.kind, "default")
        assert len(adapters) == len(OPERATOR_CASES) + 1
    finally:
        for engine in engines.values():
            await engine.stop()
