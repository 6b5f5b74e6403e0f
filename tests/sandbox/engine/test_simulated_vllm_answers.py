"""The simulated engine answers like vLLM 0.32: the same status codes, content types and messages (recorded
from the real server; `test_real_vllm.py` re-checks them against it), `/v1/models` with `root` and `parent`,
completions for loaded adapters, and the API-key middleware."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from modeladapter.sandbox.engine import SimulatedEngine, write_peft_adapter
from modeladapter.sandbox.engine.vllm_texts import sanitize_message

LOAD = "/v1/load_lora_adapter"
UNLOAD = "/v1/unload_lora_adapter"


def error(message: str, kind: str, code: int, param: str | None = None) -> dict[str, object]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class TestLoadAndUnload:
    async def test_success_is_plain_text_without_a_content_type(self, http: httpx.AsyncClient, lora: Path) -> None:
        loaded = await http.post(LOAD, json={"lora_name": "sql", "lora_path": str(lora)})
        assert (loaded.status_code, loaded.text) == (200, "Success: LoRA adapter 'sql' added successfully.")
        assert "content-type" not in loaded.headers
        unloaded = await http.post(UNLOAD, json={"lora_name": "sql"})
        assert (unloaded.status_code, unloaded.text) == (200, "Success: LoRA adapter 'sql' removed successfully.")
        assert "content-type" not in unloaded.headers

    async def test_the_same_name_twice_is_400_unless_loaded_in_place(self, http: httpx.AsyncClient, lora: Path) -> None:
        body = {"lora_name": "sql", "lora_path": str(lora)}
        await http.post(LOAD, json=body)
        again = await http.post(LOAD, json=body)
        assert again.status_code == 400 and again.headers["content-type"] == "application/json"
        assert again.json() == error(
            "The lora adapter 'sql' has already been loaded. If you want to load the adapter in place, set "
            "'load_inplace' to True.", "InvalidUserInput", 400)  # fmt: skip
        in_place = await http.post(LOAD, json={**body, "load_inplace": "yes"})  # pydantic's lax boolean
        assert in_place.status_code == 200

    async def test_unloading_an_unknown_adapter_is_404(self, http: httpx.AsyncClient) -> None:
        answer = await http.post(UNLOAD, json={"lora_name": "sql"})
        assert answer.status_code == 404
        assert answer.json() == error("The lora adapter 'sql' cannot be found.", "NotFoundError", 404)

    @pytest.mark.parametrize(
        ("body", "status", "expected"),
        [
            ({"lora_name": "", "lora_path": "/x"}, 400,
             error("Both 'lora_name' and 'lora_path' must be provided.", "InvalidUserInput", 400)),
            ({"lora_name": "tiny", "lora_path": "/x"}, 400,
             error("The lora adapter 'tiny' conflicts with a served base model.", "InvalidUserInput", 400)),
            ({"lora_name": "m", "lora_path": "/nonexistent/lora"}, 404,
             error("Loading lora m failed: No adapter found for /nonexistent/lora", "NotFoundError", 404)),
            ({"lora_name": "m", "lora_path": "org/repo"}, 404,
             error("Loading lora m failed: No adapter found for org/repo", "NotFoundError", 404)),
            ({"lora_name": 5, "lora_path": "/x"}, 400,
             error("1 validation error:\n  {'type': 'string_type', 'loc': 'body.lora_name', 'msg': 'Input should be a "
                   "valid string', 'input': '5'}", "Bad Request", 400, "body.lora_name")),
            ({}, 400,
             error("2 validation errors:\n  {'type': 'missing', 'loc': 'body.lora_name', 'msg': 'Field required', "
                   "'input': '<dict of 0 items>'}\n  {'type': 'missing', 'loc': 'body.lora_path', 'msg': 'Field "
                   "required', 'input': '<dict of 0 items>'}", "Bad Request", 400, "body.lora_name")),
            ([1, 2], 400,
             error("1 validation error:\n  {'type': 'model_attributes_type', 'loc': 'body', 'msg': 'Input should be a "
                   "valid dictionary or object to extract fields from', 'input': '<list of 2 items>'}", "Bad Request",
                   400, "body")),
        ],
        ids=["empty-name", "base-name", "missing-path", "repo-id-offline", "wrong-type", "no-fields", "not-an-object"],
    )  # fmt: skip
    async def test_refusals_carry_vllms_envelope_and_words(
        self, http: httpx.AsyncClient, body: object, status: int, expected: dict[str, object]
    ) -> None:
        answer = await http.post(LOAD, json=body)
        assert answer.status_code == status and answer.headers["content-type"] == "application/json"
        assert answer.json() == expected

    async def test_paths_in_messages_are_hidden_like_vllm_does(self, http: httpx.AsyncClient, tmp_path: Path) -> None:
        answer = await http.post(LOAD, json={"lora_name": "m", "lora_path": str(tmp_path)})
        assert answer.json()["error"]["message"] == "Loading lora m failed: No adapter found for <path>"

    @pytest.mark.parametrize(
        ("rank", "bias", "worker_error"),
        [
            (16, "none", "LoRA rank 16 is greater than max_lora_rank 8."),
            (8, "all", "Adapter bias is not supported."),
            (32, "lora_only", "LoRA rank 32 is greater than max_lora_rank 8. Adapter bias is not supported."),
        ],
    )
    async def test_an_adapter_the_worker_cannot_take_is_a_500(
        self, http: httpx.AsyncClient, tmp_path: Path, rank: int, bias: str, worker_error: str
    ) -> None:
        path = write_peft_adapter(tmp_path / "big", rank=rank, bias=bias)
        answer = await http.post(LOAD, json={"lora_name": "big", "lora_path": str(path)})
        assert answer.status_code == 500
        assert answer.json() == error(
            f"Call to add_lora method failed: Worker failed with error '{worker_error}', please check the stack trace "
            "above for the root cause", "InternalServerError", 500)  # fmt: skip

    async def test_a_file_instead_of_a_directory_is_a_500(self, http: httpx.AsyncClient, lora: Path) -> None:
        answer = await http.post(LOAD, json={"lora_name": "m", "lora_path": str(lora / "adapter_config.json")})
        assert answer.status_code == 500
        assert "[Errno 20] Not a directory: '<path>'" in answer.json()["error"]["message"]

    async def test_a_broken_adapter_config_is_a_500(self, http: httpx.AsyncClient, tmp_path: Path) -> None:
        (tmp_path / "adapter_config.json").write_text("{not json")
        answer = await http.post(LOAD, json={"lora_name": "m", "lora_path": str(tmp_path)})
        assert answer.status_code == 500 and "adapter_config.json is not JSON" in answer.text

    async def test_only_json_bodies_are_accepted(self, http: httpx.AsyncClient) -> None:
        wrong_type = await http.post(LOAD, content=b'{"lora_name":"x"}', headers={"content-type": "text/plain"})
        assert wrong_type.json() == error(
            "1 validation error:\n  Unsupported Media Type: Only 'application/json' is allowed", "Bad Request", 400
        )
        not_json = await http.post(LOAD, content=b"not json", headers={"content-type": "application/json"})
        assert not_json.json()["error"]["param"] == "body.0"
        assert "'type': 'json_invalid'" in not_json.json()["error"]["message"]


class TestModelsAndCompletions:
    async def test_models_list_the_base_then_each_adapter_with_root_and_parent(
        self, http: httpx.AsyncClient, engine: SimulatedEngine, lora: Path
    ) -> None:
        await http.post(LOAD, json={"lora_name": "sql", "lora_path": str(lora)})
        answer = await http.get("/v1/models")
        assert answer.headers["content-type"] == "application/json"
        cards = answer.json()["data"]
        assert [(c["id"], c["root"], c["parent"], c["max_model_len"]) for c in cards] == [
            ("tiny", engine.model_path, None, 256),
            ("sql", str(lora), "tiny", None),
        ]
        assert all(c["object"] == "model" and c["owned_by"] == "vllm" for c in cards)
        assert cards[1]["permission"][0]["id"].startswith("modelperm-")

    async def test_completions_differ_by_adapter_and_repeat_for_the_same_one(
        self, http: httpx.AsyncClient, tmp_path: Path
    ) -> None:
        for name in ("a", "b"):
            await http.post(LOAD, json={"lora_name": name, "lora_path": str(write_peft_adapter(tmp_path / name))})

        async def text(model: str) -> str:
            answer = await http.post("/v1/completions", json={"model": model, "prompt": "Hello world",
                                                              "max_tokens": 8, "temperature": 0})  # fmt: skip
            assert answer.status_code == 200 and answer.json()["model"] == model
            assert answer.json()["usage"] == {"prompt_tokens": 2, "total_tokens": 10, "completion_tokens": 8,
                                              "prompt_tokens_details": None, "completion_tokens_details": None}  # fmt: skip
            return str(answer.json()["choices"][0]["text"])

        assert await text("a") == await text("a")
        assert len({await text("a"), await text("b"), await text("tiny")}) == 3

    async def test_a_completion_for_a_model_not_served_is_404(self, http: httpx.AsyncClient) -> None:
        answer = await http.post("/v1/completions", json={"model": "sql", "prompt": "Hi"})
        assert answer.status_code == 404
        assert answer.json() == error("The model `sql` does not exist. Valid aliases: tiny.", "NotFoundError", 404,
                                      "model")  # fmt: skip

    async def test_health_is_an_empty_200(self, http: httpx.AsyncClient) -> None:
        answer = await http.get("/health")
        assert (answer.status_code, answer.text, answer.headers.get("content-type")) == (200, "", None)

    async def test_unknown_routes_and_methods_answer_like_fastapi(self, http: httpx.AsyncClient) -> None:
        missing = await http.get("/nope")
        assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
        wrong_method = await http.get(LOAD)
        assert (wrong_method.status_code, wrong_method.json()) == (405, {"detail": "Method Not Allowed"})
        assert wrong_method.headers["allow"] == "POST"


class TestApiKey:
    @pytest.fixture
    async def keyed(self) -> SimulatedEngine:
        return SimulatedEngine("127.0.0.1", 0, api_key="k-1")

    async def test_v1_paths_need_the_bearer_key_and_health_does_not(self, keyed: SimulatedEngine) -> None:
        await keyed.start()
        try:
            async with httpx.AsyncClient(base_url=keyed.base_url) as http:
                for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "k-1"}):
                    answer = await http.get("/v1/models", headers=headers)
                    assert (answer.status_code, answer.text) == (401, '{"error":"Unauthorized"}')
                    assert answer.headers["content-type"] == "application/json"
                assert (await http.get("/v1/models", headers={"Authorization": "Bearer k-1"})).status_code == 200
                assert (await http.get("/health")).status_code == 200
        finally:
            await keyed.stop()


@pytest.mark.parametrize(
    ("message", "sanitized"),
    [
        ("No adapter found for /root/.cache/x/lora", "No adapter found for <path>"),
        ("No adapter found for /tmp/pytest-1/lora-a", "No adapter found for <path>"),
        ("No adapter found for /work/nowhere/x", "No adapter found for /work/nowhere/x"),
        ("bad file /data/adapters/config.json", "bad file <path>"),
        ("<object at 0x7f00deadbeef>", "<object>"),
    ],
)
def test_messages_are_sanitized_as_vllm_does(message: str, sanitized: str) -> None:
    assert sanitize_message(message) == sanitized


def test_json_is_rendered_compactly_like_starlette() -> None:
    from modeladapter.sandbox.engine.vllm_texts import error_body

    assert error_body("x", "T", 400) == json.dumps(error("x", "T", 400), separators=(",", ":"))
