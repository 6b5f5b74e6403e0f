"""What `modeladapter sandbox` applies: the seed documentation's sample adapter, or the user's `-f` files.

`SAMPLE_ADAPTER` is the seed documentation's manifest, byte for byte as a user would `kubectl apply` it (the
same as the end-to-end tests' `adapter_manifest()`); it is a constant rather than a data file so that any
install carries it. `read_manifests(paths)` reads one or more files of YAML documents and keeps the
ModelAdapters; anything else is a `ManifestProblem` whose message is one line naming the file, which the
command prints before exiting with status 2. Whether a manifest is *valid* is the API server's call (the CRD
schema answers 422), not this module's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

API_VERSION: Final = "model.aibrix.ai/v1alpha1"
KIND: Final = "ModelAdapter"
BASE_MODEL: Final = "qwen-coder-1-5b-instruct"
POD_LABELS: Final = {"model.aibrix.ai/name": BASE_MODEL, "adapter.model.aibrix.ai/enabled": "true"}
SAMPLE_ARTIFACT: Final = "huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora"
SAMPLE_NAME: Final = "qwen-code-lora"

SAMPLE_ADAPTER: Final = """\
apiVersion: model.aibrix.ai/v1alpha1
kind: ModelAdapter
metadata:
  name: qwen-code-lora
  namespace: default
  labels:
    model.aibrix.ai/name: "qwen-code-lora"
    model.aibrix.ai/port: "8000"
spec:
  baseModel: qwen-coder-1-5b-instruct
  podSelector:
    matchLabels:
      model.aibrix.ai/name: qwen-coder-1-5b-instruct
      adapter.model.aibrix.ai/enabled: "true"
  artifactURL: huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora
  schedulerName: default
"""
"""The seed documentation's sample ModelAdapter."""

Manifest = dict[str, Any]


class ManifestProblem(ValueError):
    """A `-f` file that cannot be applied: missing, unreadable, not YAML, or not a ModelAdapter."""


@dataclass(frozen=True, slots=True)
class AdapterRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def ref(manifest: Manifest) -> AdapterRef:
    metadata = manifest["metadata"]
    return AdapterRef(str(metadata.get("namespace") or "default"), str(metadata["name"]))


def sample_adapter(*, artifact_url: str | None = None, credentials_secret: str | None = None) -> Manifest:
    """The sample as an object; `artifact_url` replaces its artifact (the real-vLLM lane is offline, the runtime
    downloads from the sandbox's S3 store), `credentials_secret` names the Secret holding that store's keys."""
    manifest: Manifest = yaml.safe_load(SAMPLE_ADAPTER)
    if artifact_url is not None:
        manifest["spec"]["artifactURL"] = artifact_url
    if credentials_secret is not None:
        manifest["spec"]["credentialsSecretRef"] = {"name": credentials_secret}
    return manifest


def read_manifests(paths: Iterable[str | Path]) -> list[Manifest]:
    """Every ModelAdapter in the files, in order; `ManifestProblem` at the first file that is not usable."""
    found: list[Manifest] = []
    for path in paths:
        found += _read_file(Path(path))
    return found


def _read_file(path: Path) -> list[Manifest]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ManifestProblem(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestProblem(f"{path}: cannot read it ({_one_line(str(error))})") from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ManifestProblem(f"{path}: not valid YAML{at}: {_one_line(str(problem))}") from None
    if not documents:
        raise ManifestProblem(f"{path}: holds no YAML documents")
    return [_adapter(path, number, document) for number, document in enumerate(documents, start=1)]


def _adapter(path: Path, number: int, document: object) -> Manifest:
    where = f"{path}: document {number}"
    if not isinstance(document, dict):
        raise ManifestProblem(f"{where} is not a Kubernetes object (a YAML mapping), it is {type(document).__name__}")
    kind, api_version = document.get("kind"), document.get("apiVersion")
    if kind != KIND or api_version != API_VERSION:
        raise ManifestProblem(
            f"{where} is {api_version or '(no apiVersion)'} {kind or '(no kind)'}, not {API_VERSION} {KIND}"
        )
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        raise ManifestProblem(f"{where} has no metadata.name")
    namespace = metadata.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or not namespace):
        raise ManifestProblem(f"{where} has a metadata.namespace that is not a name: {namespace!r}")
    return document


def describe_refs(manifests: Sequence[Manifest]) -> str:
    return ", ".join(str(ref(m)) for m in manifests)


def _one_line(text: str) -> str:
    return " ".join(text.split())
