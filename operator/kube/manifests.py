"""What installs the operator on a cluster: the manifests shipped as package data (`operator/deploy/*.yaml`).

* `modeladapter-crd.yaml` — the ModelAdapter CRD (`modeladapter_crd()`), which `kubectl apply` installs and
  the emulator's tests install;
* `namespace.yaml` — the operator's namespace, `modeladapter-system` unless told otherwise;
* `rbac.yaml` — the ServiceAccount, a ClusterRole with least privilege and its binding, and a Role for the
  leader-election Lease in the operator's namespace;
* `deployment.yaml` — the operator's Deployment, with probes, a non-root read-only container and an emptyDir
  for the embedded SQLite event log.

`operator_manifests(only=..., namespace=..., image=...)` loads them, moves the namespaced objects to
`namespace` and sets the image; `render_manifests` prints them as one multi-document YAML stream for
`kubectl apply -f -` (what `modeladapter manifests` does). The files themselves apply as they are.

The YAML lives in `deploy/`, not `manifests/`: in a namespace package mypy would take a `manifests/` folder
for `modeladapter.operator.kube.manifests` and never check this module.
"""

from __future__ import annotations

import re
import importlib.util
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Final, Literal

import yaml


def _deploy_folder() -> Path:
    """The kustomize bases: `deploy/` of a checkout, `modeladapter/deploy/` of an installed wheel."""
    spec = importlib.util.find_spec("modeladapter.deploy")
    locations = [] if spec is None or spec.submodule_search_locations is None else spec.submodule_search_locations
    for location in locations:
        # An editable install adds its finder's hook, which is not a folder, to a namespace package's path.
        if Path(location, "crds").is_dir():
            return Path(location)
    raise RuntimeError("the package's kustomize bases (modeladapter.deploy) are missing from this installation")


MANIFESTS = _deploy_folder()
CRD_FILE = MANIFESTS / "crds" / "modeladapter-crd.yaml"
NAMESPACE_FILE = MANIFESTS / "default" / "namespace.yaml"
RBAC_FILE = MANIFESTS / "default" / "rbac.yaml"
DEPLOYMENT_FILE = MANIFESTS / "default" / "deployment.yaml"

Part = Literal["crd", "rbac", "deployment"]
PARTS: Final[tuple[Part, ...]] = ("crd", "rbac", "deployment")
DEFAULT_NAMESPACE: Final = "modeladapter-system"
OPERATOR_CONTAINER: Final = "operator"
_DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_CLUSTER_SCOPED: Final = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"})


class ManifestError(ValueError):
    """A namespace or image that cannot go into the manifests."""


def default_image() -> str:
    """`modeladapter:<this version>`, the tag the Dockerfile's image is built with in docs/operations.md."""
    try:
        return f"modeladapter:{version('modeladapter')}"
    except PackageNotFoundError:  # pragma: no cover - only when run from a checkout that is not installed
        return "modeladapter:latest"


def _load_one(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} does not hold one Kubernetes object")
    return loaded


def _load_all(path: Path) -> list[dict[str, Any]]:
    documents = [document for document in yaml.safe_load_all(path.read_text()) if document is not None]
    if not all(isinstance(document, dict) for document in documents):
        raise ValueError(f"{path} holds something other than Kubernetes objects")
    return documents


def modeladapter_crd() -> dict[str, Any]:
    loaded = yaml.safe_load(CRD_FILE.read_text())
    if not isinstance(loaded, dict):
        raise ValueError(f"{CRD_FILE} does not hold one CRD object")
    return loaded


def operator_namespace(namespace: str = DEFAULT_NAMESPACE) -> dict[str, Any]:
    return _in_namespace(_load_one(NAMESPACE_FILE), namespace)


def rbac(*, namespace: str = DEFAULT_NAMESPACE) -> list[dict[str, Any]]:
    """ServiceAccount, ClusterRole, ClusterRoleBinding, and the leader-election Role and RoleBinding."""
    return [_in_namespace(document, namespace) for document in _load_all(RBAC_FILE)]


def deployment(*, namespace: str = DEFAULT_NAMESPACE, image: str | None = None) -> dict[str, Any]:
    document = _in_namespace(_load_one(DEPLOYMENT_FILE), namespace)
    image = default_image() if image is None else image
    _check_image(image)
    for container in document["spec"]["template"]["spec"]["containers"]:
        if container["name"] == OPERATOR_CONTAINER:
            container["image"] = image
    return document


def operator_manifests(
    *, only: Part | None = None, namespace: str = DEFAULT_NAMESPACE, image: str | None = None
) -> list[dict[str, Any]]:
    """The objects to apply, in an order `kubectl apply` accepts on an empty cluster.

    `only` picks one part; `rbac` and `deployment` bring the namespace they live in, so each part applies
    on its own.
    """
    _check_namespace(namespace)
    if only not in (None, *PARTS):
        raise ManifestError(f"--only must be one of {', '.join(PARTS)}, got {only!r}")
    documents: list[dict[str, Any]] = []
    if only in (None, "crd"):
        documents.append(modeladapter_crd())
    if only in (None, "rbac", "deployment"):
        documents.append(operator_namespace(namespace))
    if only in (None, "rbac"):
        documents.extend(rbac(namespace=namespace))
    if only in (None, "deployment"):
        documents.append(deployment(namespace=namespace, image=image))
    return documents


def render_manifests(documents: Sequence[dict[str, Any]]) -> str:
    """One YAML stream, each object after a `---`, for `kubectl apply -f -`."""
    return yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True)


def _in_namespace(document: dict[str, Any], namespace: str) -> dict[str, Any]:
    _check_namespace(namespace)
    metadata = document["metadata"]
    if document["kind"] == "Namespace":
        metadata["name"] = namespace
    elif document["kind"] not in _CLUSTER_SCOPED:
        metadata["namespace"] = namespace
    for subject in document.get("subjects", []):
        if subject.get("kind") == "ServiceAccount":
            subject["namespace"] = namespace
    return document


def _check_namespace(namespace: str) -> None:
    if not _DNS_LABEL.match(namespace):
        raise ManifestError(
            f"--namespace {namespace!r} is not a valid namespace name (lowercase letters, digits and '-', "
            "at most 63 characters, starting and ending with a letter or digit)"
        )


def _check_image(image: str) -> None:
    if not image or any(character.isspace() for character in image):
        raise ManifestError(f"--image {image!r} is not an image reference such as registry.example/modeladapter:0.1.0")
