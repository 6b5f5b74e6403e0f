"""Secret values are masked in every form an engine or a proxy plausibly echoes, and before any text is cut:
whole, URL-encoded, JSON-escaped, base64 (also inside `Bearer VALUE` and longer texts), in any letter case, and
in fragments of 8 characters or more. Short values are masked whole only, very short ones not at all."""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modeladapter.adapters.base import LoadRequest
from modeladapter.adapters.connections import MAX_API_KEY_LENGTH, ApiKey, api_key_problem
from modeladapter.adapters.masking import FRAGMENT, SecretMask
from modeladapter.adapters.outcomes import EngineError, InvalidRequest
from tests.adapters.test_request_shapes import RUNTIME, VLLM, connections_over
from tests.secret_search import decoded_base64_runs, leaked_fragment

KEY = "sk-Live-7f3a9c21e4b8d05f6a1c"


Echo = Callable[[str], str]
ECHOES: dict[str, Echo] = {
    "as sent": lambda key: key,
    "upper-cased": str.upper,
    "lower-cased": str.lower,
    "URL-encoded": lambda key: quote(key, safe=""),
    "form-encoded": lambda key: quote_plus(key),
    "JSON-escaped": lambda key: json.dumps(key)[1:-1],
    "base64": lambda key: base64.b64encode(key.encode()).decode(),
    "base64 of the Authorization header": lambda key: base64.b64encode(f"Bearer {key}".encode()).decode(),
    "base64 inside a longer text": lambda key: base64.b64encode(f"header=x-api;{key};end".encode()).decode(),
    "without its last characters": lambda key: key[:-5],
    "without its first characters": lambda key: key[5:],
    "its first bytes": lambda key: key[:FRAGMENT],
}


@pytest.mark.parametrize("echo", list(ECHOES.values()), ids=list(ECHOES))
def test_every_plausible_echo_of_a_key_is_masked(echo: Echo) -> None:
    echoed = echo(KEY)
    masked = SecretMask([KEY]).mask(f"401: invalid token {echoed!s} (request 4711)")
    assert echoed not in masked and "***" in masked
    assert masked.startswith("401: invalid token ") and masked.endswith(" (request 4711)")


def test_what_is_not_a_secret_is_left_as_it_was() -> None:
    text = 'load: {"error": {"message": "rank 64 is greater than max_lora_rank 16", "type": "BadRequestError"}}'
    assert SecretMask([KEY]).mask(text) == text


def test_a_value_under_eight_characters_is_masked_whole_and_one_under_four_not_at_all() -> None:
    assert SecretMask(["Ab9z5"]).mask("key ab9Z5, prefix Ab9z") == "key ***, prefix Ab9z"
    assert SecretMask(["k"]).mask('{"ok": true}') == '{"ok": true}'


def test_options_are_masked_whole_never_in_fragments() -> None:
    mask = SecretMask([], whole_only=["/models/qwen-base"])
    assert mask.mask("root /models/qwen-base") == "root ***"
    assert mask.mask("root /models/qwen-base-v2-other") == "root ***-v2-other"
    assert mask.mask("root /models/qwen") == "root /models/qwen"


def test_the_mask_never_shows_its_values() -> None:
    assert KEY not in repr(SecretMask([KEY])) and KEY not in repr(ApiKey(KEY))


keys = st.text(alphabet=string.ascii_letters + string.digits + string.punctuation + " ", min_size=8, max_size=120)
noise = st.text(alphabet=string.printable, max_size=300)


@settings(max_examples=300, deadline=None)
@given(key=keys.filter(lambda k: k == k.strip()), echo=st.sampled_from(sorted(ECHOES)), before=noise, after=noise)
def test_no_fragment_of_eight_characters_of_any_echo_survives(key: str, echo: str, before: str, after: str) -> None:
    echoed = ECHOES[echo](key)
    masked = SecretMask([key]).mask(before + echoed + after)
    if echo.startswith("base64"):  # what is around the key in the encoded text is no secret; the key is
        assert leaked_fragment(key, decoded_base64_runs(masked), FRAGMENT) is None, (echo, masked)
    elif len(echoed) >= FRAGMENT:
        assert leaked_fragment(echoed, masked, FRAGMENT) is None, (echo, masked)
    assert leaked_fragment(key, masked, FRAGMENT) is None


@settings(max_examples=200, deadline=None)
@given(key=keys.filter(lambda k: k == k.strip()), cut=st.integers(min_value=FRAGMENT, max_value=120))
def test_a_message_cut_inside_the_key_keeps_less_than_eight_characters_of_it(key: str, cut: int) -> None:
    text = ("x" * 50 + key)[: 50 + min(cut, len(key))]
    assert leaked_fragment(key, SecretMask([key]).mask(text), FRAGMENT) is None


# --- at the engine clients: masked before the message is cut ------------------------------------------------------


async def test_a_key_at_the_end_of_a_long_engine_error_is_masked_before_the_message_is_cut() -> None:
    # The error text is cut to 4 KiB: the key straddles the cut, so only its first characters are in the message.
    message = "x" * (4096 - 12) + f" token={KEY} rejected"
    body = json.dumps({"error": {"message": message, "type": "BadRequestError"}})
    client = connections_over(lambda _: httpx.Response(400, text=body)).client(VLLM, api_key=KEY)
    with pytest.raises(EngineError) as failure:
        await client.load(LoadRequest("sql", "/m/sql"))
    assert leaked_fragment(KEY, str(failure.value), length=5) is None


async def test_credentials_echoed_by_the_runtime_sidecar_are_masked_at_the_client() -> None:
    secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    echoed = quote(secret_key, safe="")

    def sidecar(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"object": "list", "data": []})
        return httpx.Response(500, json={"error": f"S3 said no to {echoed}"})

    client = connections_over(sidecar).client(RUNTIME, api_key=KEY)
    request = LoadRequest("sql", "s3://bucket/sql/", credentials={"aws_secret_access_key": secret_key})
    with pytest.raises(EngineError) as failure:
        await client.load(request)
    assert leaked_fragment(secret_key, str(failure.value), FRAGMENT) is None and "***" in str(failure.value)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "is empty"),
        ("abc\r\ndef", "contains a line break"),
        ("ключ-1234", "cannot be sent in an HTTP header"),
        ("key\x00with-nul", "cannot be sent in an HTTP header"),
        ("k" * (MAX_API_KEY_LENGTH + 1), f"is {MAX_API_KEY_LENGTH + 1:,} characters long"),
    ],
    ids=["empty", "line break", "not ASCII", "NUL", "longer than a header"],
)
def test_a_key_that_cannot_be_a_header_value_is_refused_without_showing_it(value: str, problem: str) -> None:
    found = api_key_problem(value)
    assert found is not None and found.startswith(problem)
    if value:
        assert value not in found
    with pytest.raises(InvalidRequest):
        ApiKey(value)


def test_the_longest_key_a_header_takes_is_accepted() -> None:
    assert api_key_problem("k" * MAX_API_KEY_LENGTH) is None


@pytest.mark.parametrize("key", ["test", "data", "model", "0000000000000000", "llama-base"])
async def test_an_answer_is_parsed_as_it_came_whatever_the_key_looks_like(key: str) -> None:
    """Only what leaves in a message is masked: a key that happens to look like JSON, a name or a number in a
    healthy answer must not change what the answer says."""
    models = {
        "object": "list",
        "data": [
            {"id": "llama-base", "root": "/models/llama-base", "parent": None, "created": 1700000000},
            {"id": "test-lora", "root": "/m/test-lora", "parent": "llama-base", "created": 1700000000},
        ],
    }
    client = connections_over(lambda _: httpx.Response(200, json=models)).client(VLLM, api_key=key)
    listed = await client.list_models()
    served = listed.find("test-lora")
    assert served is not None and served.root == "/m/test-lora" and served.is_adapter
