"""What installs the operator on a cluster: the kustomize bases under `deploy/`, shipped as the package data of
`modeladapter.deploy`, rendered by `modeladapter manifests BASE` for `kubectl apply -f -`.

* `crds` — the ModelAdapter CRD alone (`modeladapter_crd()`, which the emulator's tests install);
* `default` — the CRD, the namespace `modeladapter-system`, the ServiceAccount, least-privilege RBAC, the
  Deployment (one replica, its SQLite event log on a PersistentVolumeClaim) and the metrics Service;
* `ha-postgresql` — `default` with two replicas, a PodDisruptionBudget, topology spread and the event log in
  PostgreSQL, its URL from an existing Secret;
* `single-namespace` — `default` acting on its own namespace only, reading Secrets there through a Role;
* `prometheus` — a ServiceMonitor for the metrics Service and the PrometheusRule with the alerts.

`operator_manifests(base, namespace=..., image=...)` builds a base with `kustomize.build`, the renderer of the
kustomize subset these files use: the objects are the ones `kubectl kustomize deploy/BASE` renders. Another
namespace or image is an overlay generated here (`install_overlay`): `namespace: NS` and `namePrefix: NS-`,
so that a second install's ClusterRole and ClusterRoleBinding never overwrite the first's, and an `images`
entry. Written to a folder of its own, the same overlay renders the same with kustomize.

The YAML lives in `deploy/`, not `manifests/`: in a namespace package mypy would take a `manifests/` folder
for `modeladapter.operator.kube.manifests` and never check this module.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Final

import yaml

from modeladapter.operator.kube.kustomize import KustomizeError, build, kustomization_file, split_image


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
DEPLOYMENT_FILE = MANIFESTS / "default" / "deployment.yaml"

DEFAULT_BASE: Final = "default"
DEFAULT_NAMESPACE: Final = "modeladapter-system"
# The image name the Deployment's file uses; `--image` replaces it through an `images` entry.
IMAGE_NAME: Final = "modeladapter"
_DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class ManifestError(ValueError):
    """A base, namespace or image that cannot go into the manifests."""


def bases() -> list[str]:
    """The folders of `deploy/` that hold a kustomization: what `modeladapter manifests BASE` takes."""
    return sorted(folder.name for folder in MANIFESTS.iterdir() if folder.is_dir() and kustomization_file(folder))


def default_image() -> str:
    """`modeladapter:<this version>`, the tag the Dockerfile's image is built with in docs/operations.md."""
    try:
        return f"{IMAGE_NAME}:{version('modeladapter')}"
    except PackageNotFoundError:  # pragma: no cover - only when run from a checkout that is not installed
        return f"{IMAGE_NAME}:latest"


def modeladapter_crd() -> dict[str, Any]:
    loaded = yaml.safe_load(CRD_FILE.read_text())
    if not isinstance(loaded, dict):
        raise ValueError(f"{CRD_FILE} does not hold one CRD object")
    return loaded


def install_overlay(base_reference: str, *, namespace: str | None, image: str | None) -> dict[str, Any] | None:
    """The kustomization that moves a base to `namespace` (prefixing every name) and sets the operator image;
    None when neither changes anything. `base_reference` is the base's folder, relative to the overlay's."""
    overlay: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [base_reference],
    }
    if namespace is not None and namespace != DEFAULT_NAMESPACE:
        _check_namespace(namespace)
        overlay["namespace"] = namespace
        overlay["namePrefix"] = f"{namespace}-"
    if image is not None:
        _check_image(image)
        name, tag, digest = split_image(image)
        entry = {"name": IMAGE_NAME, "newName": name}
        # Without a tag the base's own would stay; an image named without one means `latest`.
        entry.update({"digest": digest} if digest else {"newTag": tag or "latest"})
        overlay["images"] = [entry]
    return overlay if len(overlay) > 3 else None


def operator_manifests(
    base: str = DEFAULT_BASE, *, namespace: str | None = None, image: str | None = None, without_crds: bool = False
) -> list[dict[str, Any]]:
    """The objects of `deploy/BASE`, moved to `namespace` and with `image`, in an order `kubectl apply` accepts on
    an empty cluster (the CRD and the Namespace first). `without_crds` leaves the CRDs out, as an uninstall must
    (deleting the CRD deletes every ModelAdapter)."""
    if base not in bases():
        raise ManifestError(f"no base {base!r}: choose one of {', '.join(bases())}")
    overlay = install_overlay(base, namespace=namespace, image=image)
    try:
        documents = build(MANIFESTS / base) if overlay is None else build(MANIFESTS, overlay)
    except KustomizeError as error:  # pragma: no cover - the shipped bases are built by the tests
        raise ManifestError(str(error)) from error
    for document in documents:
        name = document["metadata"]["name"]
        if document["kind"] == "Service" and len(name) > 63:
            # A Service name is a DNS label; the namespace prefixes it.
            raise ManifestError(
                f"--namespace {namespace!r} is too long: the Service would be named {name!r}, over 63 characters"
            )
    if without_crds:
        documents = [document for document in documents if document.get("kind") != "CustomResourceDefinition"]
    return documents


def render_manifests(documents: Sequence[dict[str, Any]]) -> str:
    """One YAML stream, each object after a `---`, for `kubectl apply -f -`."""
    return yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True)


def _check_namespace(namespace: str) -> None:
    if not _DNS_LABEL.match(namespace):
        raise ManifestError(
            f"--namespace {namespace!r} is not a valid namespace name (lowercase letters, digits and '-', "
            "at most 63 characters, starting and ending with a letter or digit)"
        )


def _check_image(image: str) -> None:
    name, tag, digest = split_image(image) if image else ("", "", "")
    if not name or any(character.isspace() for character in image) or (":" in image and not (tag or digest)):
        raise ManifestError(f"--image {image!r} is not an image reference such as registry.example/modeladapter:0.1.0")
