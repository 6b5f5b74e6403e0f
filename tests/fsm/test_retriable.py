"""Which failures are retried on the same pod, and which move on at once."""

from __future__ import annotations

import errno

import httpx
import pytest

from modeladapter.fsm.retriable import RETRIABLE_SUBSTRINGS, classify_failure


@pytest.mark.parametrize("substring", RETRIABLE_SUBSTRINGS)
def test_every_seed_substring_is_retriable_whatever_its_case(substring: str) -> None:
    assert classify_failure(message=f"dial tcp 10.0.0.7:8000: {substring.upper()}").retriable


@pytest.mark.parametrize(
    "exception",
    [
        httpx.ConnectError("All connection attempts failed"),
        httpx.ConnectTimeout("timed out"),
        httpx.ReadTimeout("timed out"),
        httpx.PoolTimeout("pool exhausted"),
        httpx.ReadError("peer closed"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
        TimeoutError(),
        OSError(errno.EHOSTUNREACH, "No route to host"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transport_failures_are_retriable(exception: BaseException) -> None:
    verdict = classify_failure(exception=exception)
    assert verdict.retriable, verdict


@pytest.mark.parametrize("status", [502, 503, 504, 408, 429])
def test_unavailable_engines_and_gateways_are_retriable(status: int) -> None:
    assert classify_failure(status=status, message="").retriable


@pytest.mark.parametrize(
    ("status", "message"),
    [
        pytest.param(401, '{"error": "Unauthorized"}', id="401"),
        pytest.param(403, "Forbidden", id="403"),
        pytest.param(404, "Loading lora sql-lora failed: No adapter found for /adapters/missing", id="no-adapter"),
        pytest.param(500, "LoRA rank 32 is greater than max_lora_rank 16.", id="rank"),
        pytest.param(500, "Adapter bias is not supported.", id="bias"),
        pytest.param(400, "The lora adapter 'tiny' conflicts with a served base model.", id="name-conflict"),
        pytest.param(400, "Both 'lora_name' and 'lora_path' must be provided.", id="missing-fields"),
        pytest.param(400, "invalid model format", id="invalid-format"),
    ],
)
def test_authentication_and_adapter_errors_are_not_retriable(status: int, message: str) -> None:
    verdict = classify_failure(status=status, message=message)
    assert not verdict.retriable, verdict


def test_an_authentication_failure_is_not_retried_even_if_the_text_says_timeout() -> None:
    assert not classify_failure(status=401, message="token validation timeout").retriable


def test_an_unrecognised_failure_is_not_retried_blindly() -> None:
    verdict = classify_failure(status=500, message="Internal Server Error")
    assert not verdict.retriable
    assert "HTTP 500" in verdict.reason


def test_a_programming_error_is_not_a_network_problem() -> None:
    assert not classify_failure(exception=httpx.InvalidURL("bad url")).retriable
    assert not classify_failure(exception=KeyError("lora_name")).retriable


def test_the_verdict_explains_itself() -> None:
    assert classify_failure(status=503).reason == "engine unavailable (HTTP 503)"
    assert classify_failure(message="connection refused").reason == "transient failure (connection refused)"
