"""Engine answers -> the taxonomy: every error shape engines use is read, every answer vLLM, SGLang and the
AIBrix runtime give lands in the right kind, and the kinds agree with `fsm.retriable` on what to retry."""

from __future__ import annotations

import json

import httpx
import pytest

from modeladapter.adapters.answers import interpret_failure, parse_error_body, parse_models
from modeladapter.adapters.outcomes import (
    AdapterAlreadyLoaded,
    AdapterNotLoaded,
    AlreadyLoadedWithOtherPath,
    ArtifactNotFound,
    EngineError,
    EngineRejected,
    EngineTimeout,
    EngineUnavailable,
    FailureKind,
    IncompatibleAdapter,
    InvalidRequest,
    ProtocolError,
    Unauthorized,
    Unsupported,
)
from modeladapter.fsm.retriable import classify_failure

NESTED = (
    '{"error":{"message":"The lora adapter \'x\' cannot be found.","type":"NotFoundError","param":null,"code":404}}'
)
FLAT = '{"object":"error","message":"The lora adapter \'x\' cannot be found.","type":"NotFoundError","param":null,"code":404}'


class TestErrorShapes:
    def test_the_nested_envelope_of_current_vllm(self) -> None:
        body = parse_error_body(NESTED)
        assert (body.message, body.type) == ("The lora adapter 'x' cannot be found.", "NotFoundError")

    def test_the_flat_envelope_of_vllm_before_0_10_1(self) -> None:
        body = parse_error_body(FLAT)
        assert (body.message, body.type) == ("The lora adapter 'x' cannot be found.", "NotFoundError")

    def test_a_bare_error_string_from_the_api_key_middleware_or_the_runtime(self) -> None:
        assert parse_error_body('{"error":"Unauthorized"}').message == "Unauthorized"

    def test_fastapi_detail(self) -> None:
        assert parse_error_body('{"detail":"Not Found"}').message == "Not Found"
        assert parse_error_body('{"detail":[{"loc":["body"]}]}').message == '[{"loc": ["body"]}]'

    def test_sglang_keeps_its_loaded_adapters(self) -> None:
        body = parse_error_body(
            '{"success":false,"error_message":"Failed to load LoRA adapter a because it is already loaded",'
            '"loaded_adapters":{"a":"/m/a","b":{"lora_path":"/m/b"}}}'
        )
        assert body.message.endswith("already loaded")
        assert body.loaded_adapters == {"a": "/m/a", "b": "/m/b"}

    @pytest.mark.parametrize("text", ["<html>502 Bad Gateway</html>", "  Service Unavailable\n", "[1, 2]", ""])
    def test_anything_else_is_its_own_text(self, text: str) -> None:
        assert parse_error_body(text).message == text.strip()

    def test_a_long_message_is_read_whole_and_shown_cut_to_4_kib(self) -> None:
        assert len(parse_error_body("x" * 10_000).message) == 10_000
        failure = interpret_failure(400, "x" * 10_000, operation="load")
        assert failure.engine_message == "x" * 4096 + "..."


VLLM_ANSWERS = [
    pytest.param(400, '{"error":{"message":"The lora adapter \'a\' has already been loaded. If you want to load the '
                 'adapter in place, set \'load_inplace\' to True.","type":"InvalidUserInput","param":null,"code":400}}',
                 AdapterAlreadyLoaded, id="duplicate"),
    pytest.param(404, '{"error":{"message":"Loading lora m failed: No adapter found for <path>","type":"NotFoundError",'
                 '"param":null,"code":404}}', ArtifactNotFound, id="no-adapter"),
    pytest.param(500, '{"error":{"message":"Call to add_lora method failed: Worker failed with error \'LoRA rank 16 is '
                 'greater than max_lora_rank 8.\', please check the stack trace above for the root cause","type":'
                 '"InternalServerError","param":null,"code":500}}', IncompatibleAdapter, id="rank"),
    pytest.param(500, '{"error":{"message":"Call to add_lora method failed: Worker failed with error \'Adapter bias is '
                 'not supported.\', please check the stack trace above for the root cause","type":"InternalServerError",'
                 '"param":null,"code":500}}', IncompatibleAdapter, id="bias"),
    pytest.param(401, '{"error":"Unauthorized"}', Unauthorized, id="api-key"),
    pytest.param(400, '{"error":{"message":"The lora adapter \'tiny\' conflicts with a served base model.","type":'
                 '"InvalidUserInput","param":null,"code":400}}', InvalidRequest, id="base-name"),
    pytest.param(400, '{"error":{"message":"Both \'lora_name\' and \'lora_path\' must be provided.","type":'
                 '"InvalidUserInput","param":null,"code":400}}', InvalidRequest, id="empty-fields"),
    pytest.param(404, '{"error":{"message":"The lora adapter \'a\' cannot be found.","type":"NotFoundError","param":'
                 'null,"code":404}}', AdapterNotLoaded, id="unload-unknown"),
    pytest.param(404, FLAT, AdapterNotLoaded, id="unload-unknown-flat"),
    pytest.param(404, '{"detail":"Not Found"}', Unsupported, id="runtime-updating-off"),
    pytest.param(500, '{"error":{"message":"Call to add_lora method failed: Worker failed with error \'[Errno 20] Not a '
                 'directory: \'<path>\'\', please check ...","type":"InternalServerError","param":null,"code":500}}',
                 EngineRejected, id="not-a-directory"),
    pytest.param(503, "Service Unavailable", EngineUnavailable, id="503"),
    pytest.param(502, "<html>Bad Gateway</html>", EngineUnavailable, id="502"),
    pytest.param(504, "", EngineUnavailable, id="504"),
    pytest.param(429, '{"error":"rate limited"}', EngineUnavailable, id="429"),
    pytest.param(403, "Forbidden", Unauthorized, id="403"),
    pytest.param(500, '{"error":{"message":"EngineCore encountered an issue.","type":"InternalServerError","param":null,'
                 '"code":500}}', EngineRejected, id="generic-500"),
    pytest.param(302, "", ProtocolError, id="redirect"),
]  # fmt: skip

OTHER_ENGINES = [
    pytest.param(400, '{"success":false,"error_message":"Failed to load LoRA adapter a because it is already loaded",'
                 '"loaded_adapters":{"a":"/m/a"}}', AdapterAlreadyLoaded, id="sglang-duplicate"),
    pytest.param(400, '{"success":false,"error_message":"LoRA adapter a with rank 16 is incompatible with the current '
                 'LoRA memory pool configuration.","loaded_adapters":{}}', IncompatibleAdapter, id="sglang-rank"),
    pytest.param(400, '{"success":false,"error_message":"Can\'t find \'adapter_config.json\' at \'/m/x\'",'
                 '"loaded_adapters":{}}', ArtifactNotFound, id="sglang-missing"),
    pytest.param(400, '{"success":false,"error_message":"LoRA with name a does not exist. Loaded LoRAs: dict_keys([])",'
                 '"loaded_adapters":{}}', AdapterNotLoaded, id="sglang-unload-unknown"),
    pytest.param(500, '{"error":"Artifact not found: s3://bucket/sql"}', ArtifactNotFound, id="runtime-not-found"),
    pytest.param(
        500,
        json.dumps({"error": "Artifact not found: [Errno 2] No such file or directory: "
                             "'/tmp/aibrix/adapters/sql/w.safetensors.part' -> '/tmp/aibrix/adapters/sql/w.safetensors'"}),
        EngineUnavailable,
        id="runtime-download-collided",
    ),
    pytest.param(500, '{"error":"Permission denied: s3://bucket/sql"}', Unauthorized, id="runtime-denied"),
    pytest.param(500, '{"error":"Unsupported URL scheme: hf"}', Unsupported, id="runtime-scheme"),
    pytest.param(500, '{"error":"Engine error: Loading lora a failed: No adapter found for <path>"}',
                 ArtifactNotFound, id="runtime-engine-not-found"),
    pytest.param(500, '{"error":"Engine error: connection refused by 127.0.0.1:8000"}', EngineRejected,
                 id="runtime-engine-down"),
]  # fmt: skip


@pytest.mark.parametrize(("status", "body", "expected"), VLLM_ANSWERS + OTHER_ENGINES)
def test_each_engine_answer_lands_in_its_kind(status: int, body: str, expected: type[EngineError]) -> None:
    error = interpret_failure(status, body, operation="load")
    assert type(error) is expected
    assert error.status == status
    assert str(error).startswith(f"{expected.kind}: load: engine answered HTTP {status}")


@pytest.mark.parametrize(("status", "body", "expected"), VLLM_ANSWERS + OTHER_ENGINES)
def test_retriability_agrees_with_the_fsm_classifier(status: int, body: str, expected: type[EngineError]) -> None:
    error = interpret_failure(status, body, operation="load")
    assert error.retriable == classify_failure(status=status, message=error.engine_message).retriable


def test_a_sidecar_500_about_a_dead_engine_is_retried() -> None:
    error = interpret_failure(500, '{"error":"Engine error: connection refused"}', operation="load")
    assert isinstance(error, EngineRejected) and error.retriable


@pytest.mark.parametrize(
    ("error", "retriable"),
    [
        (EngineUnavailable("x"), True),
        (EngineTimeout("x"), True),
        (ArtifactNotFound("x"), False),
        (IncompatibleAdapter("x"), False),
        (Unauthorized("x"), False),
        (InvalidRequest("x"), False),
        (Unsupported("x"), False),
        (ProtocolError("x"), False),
        (AlreadyLoadedWithOtherPath("x", loaded_path="/a", wanted_path="/b"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, EngineError) else str(value),
)
def test_only_unavailable_engines_and_timeouts_are_retried_on_the_same_pod(error: EngineError, retriable: bool) -> None:
    assert error.retriable is retriable


@pytest.mark.parametrize(
    "exception",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("gone")],
    ids=lambda e: type(e).__name__,
)
def test_the_fsm_classifier_retries_what_the_transport_turns_into_unavailable_or_timeout(
    exception: Exception,
) -> None:
    assert classify_failure(exception=exception).retriable


def test_every_failure_kind_has_a_distinct_stable_name() -> None:
    assert len({kind.value for kind in FailureKind}) == len(FailureKind)
    assert FailureKind.UNAVAILABLE == "EngineUnavailable"


class TestModelLists:
    def test_cards_keep_id_root_and_parent(self) -> None:
        models = parse_models(
            '{"object":"list","data":[{"id":"tiny","root":"/m/tiny","parent":null,"max_model_len":256},'
            '{"id":"sql","root":"/m/sql","parent":"tiny","max_model_len":null}]}'
        )
        assert [m.id for m in models.base_models] == ["tiny"]
        assert [(m.id, m.root, m.parent) for m in models.adapters] == [("sql", "/m/sql", "tiny")]
        assert models.find("sql") is not None and models.find("nope") is None

    def test_an_sglang_list_without_parents_has_only_base_models(self) -> None:
        models = parse_models('{"object":"list","data":[{"id":"qwen","root":"qwen"}]}')
        assert models.adapters == () and models.find("qwen") is not None

    @pytest.mark.parametrize(
        "text", ["not json", "[]", '{"data": {}}', '{"data": [{"root": "/x"}]}', '{"data": [{"id": 7}]}', '{"x": 1}']
    )
    def test_anything_else_is_a_protocol_error(self, text: str) -> None:
        with pytest.raises(ProtocolError):
            parse_models(text)
