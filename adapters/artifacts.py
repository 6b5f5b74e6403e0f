"""Where an adapter's weights live, and what each engine must be told to find them. Pure.

`artifactURL` schemes (DESIGN §3, AIBrix §3):

* `huggingface://org/repo` and `hf://org/repo` -> `org/repo`: a direct engine downloads the repository itself;
* an absolute path -> sent as is: the directory must be mounted into the engine container;
* `s3://`, `gcs://`, `gs://`, `tos://` -> only the AIBrix runtime sidecar can download these. A direct engine
  would misread them as Hugging Face repository ids, so they fail here, at once and for good, with
  `Unsupported`.

Anything else (`http://`, a relative path, an empty repository) is an `InvalidRequest`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from modeladapter.adapters.outcomes import InvalidRequest, Unsupported


class ArtifactScheme(StrEnum):
    HUGGINGFACE = "huggingface"
    HF = "hf"
    S3 = "s3"
    GCS = "gcs"
    GS = "gs"
    TOS = "tos"
    LOCAL = "local"


HUB_SCHEMES: Final = frozenset({ArtifactScheme.HUGGINGFACE, ArtifactScheme.HF})
SIDECAR_ONLY_SCHEMES: Final = frozenset({ArtifactScheme.S3, ArtifactScheme.GCS, ArtifactScheme.GS, ArtifactScheme.TOS})
ACCEPTED_FORMS: Final = "huggingface://, hf://, s3://, gcs://, gs://, tos:// or an absolute path"


@dataclass(frozen=True, slots=True)
class Artifact:
    url: str
    scheme: ArtifactScheme
    location: str
    """The repository id (`org/repo`), the bucket and key (`bucket/key`) or the absolute path."""

    @property
    def needs_sidecar(self) -> bool:
        return self.scheme in SIDECAR_ONLY_SCHEMES


def parse_artifact_url(url: str) -> Artifact:
    """Split an `artifactURL` into scheme and location, or raise `InvalidRequest` saying what is accepted."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidRequest(f"artifactURL is empty; use {ACCEPTED_FORMS}")
    if url != url.strip():
        raise InvalidRequest(f"artifactURL {url!r} has leading or trailing whitespace")
    if url.startswith("/"):
        return Artifact(url, ArtifactScheme.LOCAL, url)
    scheme_name, separator, rest = url.partition("://")
    if not separator:
        raise InvalidRequest(f"artifactURL {url!r} is neither a URL nor an absolute path; use {ACCEPTED_FORMS}")
    try:
        scheme = ArtifactScheme(scheme_name.lower())
    except ValueError:
        raise InvalidRequest(
            f"artifactURL {url!r} has an unsupported scheme {scheme_name!r}; use {ACCEPTED_FORMS}"
        ) from None
    if scheme is ArtifactScheme.LOCAL:
        raise InvalidRequest(f"artifactURL {url!r} has an unsupported scheme; use {ACCEPTED_FORMS}")
    location = rest.strip("/")
    if not location or any(not part for part in location.split("/")):
        raise InvalidRequest(f"artifactURL {url!r} names no {'repository' if scheme in HUB_SCHEMES else 'object'}")
    if scheme in HUB_SCHEMES and len(location.split("/")) > 2:
        raise InvalidRequest(f"artifactURL {url!r} is not a Hugging Face repository id (expected org/repo)")
    return Artifact(url, scheme, location)


def lora_path_for_engine(url: str) -> str:
    """The `lora_path` a direct engine (vLLM, SGLang) is given for an `artifactURL`."""
    artifact = parse_artifact_url(url)
    if artifact.needs_sidecar:
        raise Unsupported(
            f"artifactURL {url!r} ({artifact.scheme}://) can only be loaded through the AIBrix runtime sidecar "
            "(operator flag --enable-runtime-sidecar and an `aibrix-runtime` container in the pod); a direct "
            "engine cannot download it"
        )
    return artifact.location


def same_path(loaded: str | None, wanted: str) -> bool:
    """Does an engine's `root` name the path we asked for? Trailing slashes do not count."""
    if loaded is None:
        return False
    return loaded == wanted or (loaded.rstrip("/") or "/") == (wanted.rstrip("/") or "/")
