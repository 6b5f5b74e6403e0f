"""artifactURL -> what each engine is told: hub repositories and absolute paths go straight to the engine,
bucket URLs only through the runtime sidecar, anything else is rejected with a clear, typed error."""

from __future__ import annotations

import pytest

from modeladapter.adapters.artifacts import ArtifactScheme, lora_path_for_engine, parse_artifact_url, same_path
from modeladapter.adapters.outcomes import FailureKind, InvalidRequest, Unsupported
from modeladapter.adapters.runtime import sidecar_artifact_url


@pytest.mark.parametrize(
    ("url", "lora_path"),
    [
        ("huggingface://yard1/llama-2-7b-sql-lora-test", "yard1/llama-2-7b-sql-lora-test"),
        ("hf://yard1/llama-2-7b-sql-lora-test", "yard1/llama-2-7b-sql-lora-test"),
        ("huggingface://gpt2-lora", "gpt2-lora"),
        ("huggingface://org/repo/", "org/repo"),
        ("HF://org/repo", "org/repo"),
        ("/models/adapters/sql-lora", "/models/adapters/sql-lora"),
        ("/models/adapters/sql-lora/", "/models/adapters/sql-lora/"),
    ],
)
def test_hub_repositories_and_absolute_paths_go_straight_to_the_engine(url: str, lora_path: str) -> None:
    assert lora_path_for_engine(url) == lora_path


@pytest.mark.parametrize("url", ["s3://bucket/adapters/sql/", "gcs://bucket/sql", "gs://bucket/sql", "tos://b/k"])
def test_bucket_urls_need_the_runtime_sidecar_and_fail_for_good_without_it(url: str) -> None:
    with pytest.raises(Unsupported) as raised:
        lora_path_for_engine(url)
    assert raised.value.kind is FailureKind.UNSUPPORTED
    assert not raised.value.retriable
    assert "--enable-runtime-sidecar" in str(raised.value) and "aibrix-runtime" in str(raised.value)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("huggingface://", "names no repository"),
        ("hf:///", "names no repository"),
        ("huggingface://org//repo", "names no repository"),
        ("huggingface://org/repo/extra", "not a Hugging Face repository id"),
        ("s3://", "names no object"),
        ("http://example.com/adapter.tar", "unsupported scheme 'http'"),
        ("ftp://host/x", "unsupported scheme 'ftp'"),
        ("local://x", "unsupported scheme"),
        ("adapters/sql-lora", "neither a URL nor an absolute path"),
        (" /models/x", "whitespace"),
    ],
)
def test_malformed_urls_are_invalid_requests_that_say_what_is_accepted(url: str, complaint: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        lora_path_for_engine(url)
    assert complaint in str(raised.value)
    assert not raised.value.retriable


def test_the_parsed_artifact_knows_its_scheme_and_whether_it_needs_the_sidecar() -> None:
    assert parse_artifact_url("s3://bucket/key").scheme is ArtifactScheme.S3
    assert parse_artifact_url("s3://bucket/key").needs_sidecar
    assert parse_artifact_url("/abs/path").scheme is ArtifactScheme.LOCAL
    assert not parse_artifact_url("hf://org/repo").needs_sidecar


@pytest.mark.parametrize(
    ("url", "sent"),
    [
        ("hf://org/repo", "huggingface://org/repo"),
        ("huggingface://org/repo", "huggingface://org/repo"),
        ("/abs/path", "/abs/path"),
    ],
)
def test_the_sidecar_is_sent_the_scheme_names_it_knows(url: str, sent: str) -> None:
    assert sidecar_artifact_url(url) == sent


@pytest.mark.parametrize(
    ("url", "sent"),
    [
        ("s3://bucket/key/", "s3://bucket/key/"),
        ("s3://bucket/key", "s3://bucket/key/"),
        ("s3://bucket/team/adapter", "s3://bucket/team/adapter/"),
        ("gs://bucket/key", "gcs://bucket/key/"),
        ("gcs://bucket/key/", "gcs://bucket/key/"),
        ("tos://bucket/key", "tos://bucket/key/"),
    ],
)
def test_the_sidecar_is_sent_an_object_store_location_as_a_folder(url: str, sent: str) -> None:
    # The runtime downloads a folder only for a key ending in '/'; without it, one object (aibrix 0.8.0).
    assert sidecar_artifact_url(url) == sent


@pytest.mark.parametrize(
    ("loaded", "wanted", "same"),
    [
        ("/a/b", "/a/b", True),
        ("/a/b/", "/a/b", True),
        ("/a/b", "/a/b/", True),
        ("/a/b", "/a/c", False),
        (None, "/a/b", False),
        ("org/repo", "org/repo", True),
    ],
)
def test_a_root_names_the_same_path_whatever_its_trailing_slash(loaded: str | None, wanted: str, same: bool) -> None:
    assert same_path(loaded, wanted) is same
