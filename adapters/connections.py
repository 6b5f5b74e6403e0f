"""The I/O edge of every engine client: one shared `httpx.AsyncClient`, time limits, a concurrency bound per
pod, the Bearer API key, and transport failures turned into the taxonomy.

One `EngineConnections` lives as long as the operator (it owns the pooled `httpx.AsyncClient` unless one is
passed in, e.g. with a `MockTransport` in tests). Engine clients are cheap views over it, made per pod and API
key with `connections.client(target, api_key=...)`.

Time limits (DESIGN §6): 5 s to connect, 30 s for the whole call (`asyncio.timeout` around the request; httpx's
own timeouts are per read/write, so a trickling answer could otherwise run far longer), and 10 s for a listing
(`GET /v1/models` is a lookup in the engine's memory: a listing that takes longer is an engine in trouble, and
a verification must not hold a reconcile for the 30 s a load may need). Waiting for a free slot
of the pod's concurrency bound does not count against the call's 30 s. An answer is read up to 4 MiB; a longer
one is a `ProtocolError`, so an engine that streams without end cannot fill the operator's memory within the
30 s. Requests ask for `Accept-Encoding: identity`, and a compressed answer is a `ProtocolError` (a gzip bomb
would otherwise inflate a thousandfold before any limit could be checked).

API keys travel only in the `Authorization` header. They are held in `ApiKey`, whose `repr` and `str` hide the
value; nothing here logs headers or bodies, and httpx's own loggers see neither.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Final

import httpx

from modeladapter.adapters.masking import NO_MASK, SecretMask
from modeladapter.adapters.outcomes import EngineTimeout, EngineUnavailable, InvalidRequest, ProtocolError
from modeladapter.adapters.selection import EngineKind, EngineTarget

if TYPE_CHECKING:
    from modeladapter.adapters.base import EngineClient

logger = logging.getLogger("modeladapter.adapters")

CONNECT_TIMEOUT: Final = 5.0
TOTAL_TIMEOUT: Final = 30.0
LIST_TIMEOUT: Final = 10.0
MAX_RESPONSE_BYTES: Final = 4 * 1024 * 1024
PER_POD_CONCURRENCY: Final = 4
USER_AGENT: Final = "modeladapter-operator"


class ApiKey:
    """An engine API key. Its value leaves only through `reveal()`, into the Authorization header."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        problem = api_key_problem(value)
        if problem is not None:
            raise InvalidRequest(f"the engine API key {problem}")
        self._value = value

    def reveal(self) -> str:
        return self._value

    @property
    def mask(self) -> SecretMask:
        """Masks the key in every form an engine may echo (built once per key value, not per call)."""
        return _key_mask(self._value)

    def __repr__(self) -> str:
        return "ApiKey(<hidden>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiKey) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@functools.lru_cache(maxsize=1024)
def _key_mask(value: str) -> SecretMask:
    return SecretMask([value])


MAX_API_KEY_LENGTH: Final = 4096
"""Longer keys are refused: with `Bearer ` they pass the 4-8 KiB a header line may have at common proxies,
and an engine's "header too large" answer would echo the first bytes of the key."""


def api_key_problem(value: object) -> str | None:
    """Why `value` cannot be sent as an API key in an `Authorization` header (never showing it), or None."""
    if not isinstance(value, str) or not value.strip():
        return "is empty"
    if any(ch in value for ch in "\r\n"):
        return "contains a line break"
    if value != value.strip() or not all(" " <= ch <= "~" for ch in value):
        # httpx would raise UnicodeEncodeError, or h11 an error that quotes the whole header, key included.
        return "cannot be sent in an HTTP header: only printable ASCII, without leading or trailing spaces"
    if len(value) > MAX_API_KEY_LENGTH:
        return f"is {len(value):,} characters long; a header takes at most {MAX_API_KEY_LENGTH:,} here"
    return None


@dataclass(frozen=True, slots=True)
class Answer:
    """An engine's HTTP answer, read in full."""

    status: int
    text: str
    """The body as it came: parse it, never show it (`shown`)."""
    content_type: str
    elapsed_ms: float
    mask: SecretMask = NO_MASK
    """The secrets the request carried (its key, the credentials in its body): masked in what is shown."""

    def shown(self, limit: int = 4096) -> str:
        """The body as it may go into a message: the secrets masked, then cut to `limit` characters."""
        return self.mask.shown(self.text, limit)


class EngineConnections:
    """The shared HTTP client, the per-pod concurrency bounds, and the factory of engine clients."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient | None = None,
        per_pod_concurrency: int = PER_POD_CONCURRENCY,
        connect_timeout: float = CONNECT_TIMEOUT,
        total_timeout: float = TOTAL_TIMEOUT,
        list_timeout: float = LIST_TIMEOUT,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        if per_pod_concurrency < 1:
            raise ValueError("per_pod_concurrency must be at least 1")
        self.max_response_bytes = max_response_bytes
        self._owns_http = http is None
        self.http = http if http is not None else create_http_client(connect_timeout, total_timeout)
        self.per_pod_concurrency = per_pod_concurrency
        self.total_timeout = total_timeout
        self.list_timeout = min(list_timeout, total_timeout)
        self._limits: dict[tuple[str, int], asyncio.Semaphore] = {}
        self._in_flight: dict[tuple[str, int], int] = {}

    async def __aenter__(self) -> EngineConnections:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    def client(self, target: EngineTarget, *, api_key: ApiKey | str | None = None) -> EngineClient:
        """The engine client for one pod's engine endpoint, sending `api_key` (if any) as a Bearer token."""
        # Imported here because every client module imports this one (for `Answer`, `ApiKey`).
        from modeladapter.adapters.runtime import RuntimeSidecarClient
        from modeladapter.adapters.sglang import SglangClient
        from modeladapter.adapters.vllm import VllmClient

        key = ApiKey(api_key) if isinstance(api_key, str) else api_key
        if target.kind is EngineKind.SGLANG:
            return SglangClient(target, connections=self, api_key=key)
        if target.kind is EngineKind.RUNTIME:
            return RuntimeSidecarClient(target, connections=self, api_key=key)
        return VllmClient(target, connections=self, api_key=key)

    def in_flight(self, target: EngineTarget) -> int:
        """How many calls to this pod hold a slot now (for tests and metrics)."""
        return self._in_flight.get((target.host, target.port), 0)

    async def request(
        self,
        target: EngineTarget,
        method: str,
        path: str,
        *,
        operation: str,
        api_key: ApiKey | None = None,
        body: Mapping[str, object] | None = None,
        timeout: float | None = None,
        secrets: SecretMask = NO_MASK,
    ) -> Answer:
        """Send one request and read the whole answer, or raise `EngineTimeout` / `EngineUnavailable`.

        `timeout` bounds the call (default: `total_timeout`). The answer carries the mask of the API key and of
        `secrets` (values the body carries), for whatever of it is shown; the message of an error is masked."""
        url = target.base_url + path
        headers = {"Accept": "application/json", "Accept-Encoding": "identity", "User-Agent": USER_AGENT}
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key.reveal()}"

        mask = api_key.mask | secrets if api_key is not None else secrets

        pod = (target.host, target.port)
        limit = self._limits.setdefault(pod, asyncio.Semaphore(self.per_pod_concurrency))
        async with limit:
            started = time.perf_counter()
            self._in_flight[pod] = self._in_flight.get(pod, 0) + 1
            try:
                async with asyncio.timeout(self.total_timeout if timeout is None else timeout):
                    async with self.http.stream(method, url, json=body, headers=headers) as response:
                        content = await self._read_capped(response, operation, target)
            except (httpx.TimeoutException, TimeoutError) as error:
                logger.debug("%s %s: no answer (%s)", method, url, type(error).__name__)
                raise EngineTimeout(
                    f"{operation}: no answer from {target} within the time limit ({type(error).__name__})"
                ) from error
            except httpx.TransportError as error:
                logger.debug("%s %s: %s", method, url, type(error).__name__)
                raise EngineUnavailable(
                    mask.mask(f"{operation}: {target} is unreachable ({type(error).__name__}: {error or 'no detail'})")
                ) from error
            except httpx.InvalidURL as error:
                raise InvalidRequest(f"{operation}: {url!r} is not a valid URL ({error})") from error
            finally:
                self._in_flight[pod] -= 1
            elapsed_ms = (time.perf_counter() - started) * 1000
        try:
            text = content.decode(response.encoding or "utf-8", errors="replace")
        except (UnicodeDecodeError, LookupError) as error:
            raise ProtocolError(f"{operation}: {target} answered undecodable text ({error})") from error
        logger.debug("%s %s -> %d in %.1f ms", method, url, response.status_code, elapsed_ms)
        return Answer(response.status_code, text, response.headers.get("content-type", ""), elapsed_ms, mask)

    async def _read_capped(self, response: httpx.Response, operation: str, target: EngineTarget) -> bytes:
        """The whole body as sent, or `ProtocolError` as soon as it is longer than the cap or compressed."""
        limit = self.max_response_bytes
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise ProtocolError(f"{operation}: {target} answered with Content-Encoding {encoding!r}, not identity")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ProtocolError(f"{operation}: {target} announced an answer of {declared} bytes (the limit is {limit})")
        chunks: list[bytes] = []
        size = 0
        # `aiter_bytes`, not `aiter_raw`: the same bytes here (anything but identity was refused above), and it
        # also serves an answer whose body was read already (a transport that hands over whole responses).
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise ProtocolError(f"{operation}: {target} answered more than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def create_http_client(
    connect_timeout: float = CONNECT_TIMEOUT, total_timeout: float = TOTAL_TIMEOUT
) -> httpx.AsyncClient:
    """The pooled client with explicit timeouts; engines are plain HTTP on pod IPs, never through a proxy."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(total_timeout, connect=connect_timeout),
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        trust_env=False,
        follow_redirects=False,
    )
