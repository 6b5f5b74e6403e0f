"""Is a failed engine call worth retrying on the same pod? A pure classification of the failure.

The seed documentation's rule: transient network and availability problems are retried with backoff;
authentication failures, invalid adapters and configuration errors fail on that pod at once (the operator
then switches pods). Checked in this order, first match wins:

1. HTTP 401 and 403: non-retriable (authentication).
2. HTTP 408, 429, 502, 503 and 504: retriable (the engine or a proxy in front of it is busy or down).
3. Transport exceptions: httpx's timeouts and network errors, and the standard library's connection and
   timeout errors: retriable. httpx is recognised by its class names, so this module imports no I/O library.
4. The engine's answers about the adapter itself (vLLM's 404 "No adapter found", 500 "rank ... greater than
   max_lora_rank", "Adapter bias is not supported", name conflicts, "invalid ..."): non-retriable.
5. The seed list of substrings, case-insensitive: retriable; and the AIBrix runtime's "[Errno 2] ... .part' ->
   ...": its download collided with another of the same name in the folder runtimes share, and the next
   attempt finds the finished files.
6. Anything else: non-retriable. An unknown failure is not retried blindly; the pod switch and the cool-down
   (`modeladapter.fsm.backoff`) still give the adapter another chance.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Final

# The seed documentation's list, verbatim.
RETRIABLE_SUBSTRINGS: Final = (
    "connection refused",
    "connection reset",
    "timeout",
    "no route to host",
    "network is unreachable",
    "temporary failure",
    "service unavailable",
    "bad gateway",
)

DOWNLOAD_COLLIDED: Final = ".part' -> "
"""In the AIBrix runtime's error: the rename of its download's temporary file failed."""

RETRIABLE_STATUSES: Final = frozenset({408, 429, 502, 503, 504})
AUTHENTICATION_STATUSES: Final = frozenset({401, 403})

# What engines answer when the adapter or its configuration is wrong (vLLM 0.32/0.33 texts, lower-cased).
NON_RETRIABLE_MARKERS: Final = (
    "no adapter found",
    "greater than max_lora_rank",
    "bias is not supported",
    "conflicts with a served base model",
    "has already been loaded",
    "must be provided",
    "invalid",
    "authentication",
    "unauthorized",
    "forbidden",
    "not supported",
    "unsupported",
)

# httpx exception classes (matched by name within the httpx package) that mean "the network or the peer
# failed", as opposed to a bad request or a bad URL.
_HTTPX_TRANSIENT: Final = frozenset(
    {
        "TimeoutException",
        "NetworkError",
        "RemoteProtocolError",
        "ProxyError",
    }
)

_TRANSIENT_ERRNOS: Final = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ETIMEDOUT,
        errno.EPIPE,
    }
)


@dataclass(frozen=True, slots=True)
class Verdict:
    retriable: bool
    reason: str


def classify_failure(
    *, message: str = "", status: int | None = None, exception: BaseException | None = None
) -> Verdict:
    """Classify a failed engine call from its HTTP status, its error text and/or the exception raised."""
    if status in AUTHENTICATION_STATUSES:
        return Verdict(False, f"authentication failed (HTTP {status})")
    if status in RETRIABLE_STATUSES:
        return Verdict(True, f"engine unavailable (HTTP {status})")
    if exception is not None and _is_transient_exception(exception):
        return Verdict(True, f"transient network error ({type(exception).__name__})")
    text = " ".join(part for part in (message, str(exception) if exception is not None else "") if part).lower()
    for marker in NON_RETRIABLE_MARKERS:
        if marker in text:
            return Verdict(False, f"the engine rejected the adapter ({marker})")
    for substring in RETRIABLE_SUBSTRINGS:
        if substring in text:
            return Verdict(True, f"transient failure ({substring})")
    if "[errno" in text and DOWNLOAD_COLLIDED in text:
        return Verdict(True, "the runtime's download collided with another of the same name")
    if status is not None:
        return Verdict(False, f"unexpected engine answer (HTTP {status})")
    return Verdict(False, "unrecognised failure")


def _is_transient_exception(exception: BaseException) -> bool:
    for cls in type(exception).__mro__:
        if cls.__module__.split(".", 1)[0] == "httpx" and cls.__name__ in _HTTPX_TRANSIENT:
            return True
    if isinstance(exception, (ConnectionError, TimeoutError)):
        return True
    return isinstance(exception, OSError) and exception.errno in _TRANSIENT_ERRNOS
