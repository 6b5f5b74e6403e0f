"""Renders a kustomization the way `kustomize build` (v5) does, for the subset of kustomize the bases under
`deploy/` use, so that `modeladapter manifests` prints the objects `kubectl apply -k` would apply, from the same
files, on a machine without kustomize.

The subset, per kustomization (each field applied in kustomize's order):

* `resources` — YAML files (inside the kustomization's folder, as kustomize's load restrictions demand) and
  folders holding a kustomization, each built first;
* `configMapGenerator` — ConfigMaps from `files` and `literals`, with `options.disableNameSuffixHash: true`
  (kustomize's content hash is not reproduced) and optional `options.labels` and `options.annotations`;
* `patches` — from `patch` (inline) or `path` (a file), each with a `target` (`group`, `version`, `kind`, `name`,
  `namespace`; kind, name and namespace are anchored regular expressions): a JSON 6902 list of operations, or a
  strategic-merge patch that is only `$patch: delete` (which removes its targets);
* `namespace` — sets `metadata.namespace` of every namespaced object, renames the Namespace objects, and moves
  the `default` ServiceAccount named in RoleBinding and ClusterRoleBinding subjects;
* `namePrefix` — prefixes every name but those of Namespaces and CustomResourceDefinitions;
* `labels` — `pairs` added to every object's `metadata.labels` (neither selectors nor templates);
* `images` — `name` with `newName`, `newTag` or `digest`, for the containers of pod templates.

After these, references to the objects renamed or moved at that level follow them, as kustomize's name
reference fix-up does for the kinds present: a pod template's ServiceAccount, PersistentVolumeClaims, Secrets
and ConfigMaps, and a binding's `roleRef` and ServiceAccount `subjects`.

Any other field (generators, components, `commonLabels`, replacements, ...) is refused with a `KustomizeError`
that names it, rather than rendered differently from kustomize. Objects come out in the order they were
accumulated (kustomize's `fifo` order; `kubectl kustomize` sorts them by kind, the same objects).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jsonpatch
import yaml

JsonDict = dict[str, Any]

KUSTOMIZATION_FILES: Final = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_FIELDS: Final = frozenset(
    {"apiVersion", "kind", "resources", "configMapGenerator", "patches", "namespace", "namePrefix", "labels", "images"}
)
_GENERATOR_FIELDS: Final = frozenset({"name", "files", "literals", "options"})
_GENERATOR_OPTIONS: Final = frozenset({"disableNameSuffixHash", "labels", "annotations"})
_PATCH_FIELDS: Final = frozenset({"patch", "path", "target"})
_TARGET_FIELDS: Final = frozenset({"group", "version", "kind", "name", "namespace"})
_LABEL_FIELDS: Final = frozenset({"pairs", "includeSelectors", "includeTemplates"})
_IMAGE_FIELDS: Final = frozenset({"name", "newName", "newTag", "digest"})
# The built-in kinds a namespace never applies to (kustomize reads the same from its OpenAPI document).
CLUSTER_SCOPED_KINDS: Final = frozenset(
    {
        "Namespace", "Node", "PersistentVolume", "StorageClass", "PriorityClass", "RuntimeClass", "CSIDriver",
        "CSINode", "VolumeAttachment", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
        "APIService", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "IngressClass",
        "CertificateSigningRequest", "PodSecurityPolicy", "FlowSchema", "PriorityLevelConfiguration",
    }
)  # fmt: skip
_UNPREFIXED_KINDS: Final = frozenset({"Namespace", "CustomResourceDefinition", "APIService"})
_POD_TEMPLATE_KINDS: Final = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})


class KustomizeError(ValueError):
    """A kustomization this renderer cannot build as kustomize would: a field outside the subset, a bad path."""


@dataclass
class _Resource:
    obj: JsonDict
    # (kind, name, namespace) when this kustomization level began: what references in the level's objects name.
    before: tuple[str, str, str] = ("", "", "")

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def name(self) -> str:
        return str(self.obj["metadata"].get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.obj["metadata"].get("namespace", ""))

    def key(self) -> tuple[str, str, str, str]:
        return (str(self.obj.get("apiVersion", "")), self.kind, self.namespace, self.name)


def build(folder: Path, kustomization: Mapping[str, Any] | None = None) -> list[JsonDict]:
    """The objects of the kustomization in `folder` (or of `kustomization`, as if it were that folder's file)."""
    return [resource.obj for resource in _build(folder.resolve(), kustomization, ())]


def kustomization_file(folder: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def _build(folder: Path, given: Mapping[str, Any] | None, seen: tuple[Path, ...]) -> list[_Resource]:
    if folder in seen:
        raise KustomizeError(f"{folder}: a kustomization that includes itself ({' -> '.join(map(str, seen))})")
    kustomization = dict(given) if given is not None else _read_kustomization(folder)
    where = f"{folder}/kustomization.yaml" if given is None else f"the kustomization for {folder}"
    unsupported = sorted(set(kustomization) - SUPPORTED_FIELDS)
    if unsupported:
        raise KustomizeError(
            f"{where}: {', '.join(unsupported)} is not implemented by modeladapter's renderer "
            f"(it implements {', '.join(sorted(SUPPORTED_FIELDS - {'apiVersion', 'kind'}))})"
        )
    if kustomization.get("kind", "Kustomization") != "Kustomization":
        raise KustomizeError(f"{where}: kind {kustomization['kind']!r} is not implemented (only Kustomization)")
    resources: list[_Resource] = []
    for entry in _list(kustomization, "resources", where):
        for resource in _accumulate(folder, str(entry), where, (*seen, folder)):
            if any(other.key() == resource.key() for other in resources):
                raise KustomizeError(f"{where}: {'/'.join(filter(None, resource.key()[1:]))} is accumulated twice")
            resources.append(resource)
    for generator in _list(kustomization, "configMapGenerator", where):
        resources.append(_Resource(_config_map(folder, generator, where)))
    for resource in resources:
        resource.before = (resource.kind, resource.name, resource.namespace)
    for patch in _list(kustomization, "patches", where):
        resources = _apply_patch(folder, patch, resources, where)
    if "namespace" in kustomization:
        _set_namespace(resources, _string(kustomization, "namespace", where))
    if "namePrefix" in kustomization:
        _prefix_names(resources, _string(kustomization, "namePrefix", where))
    for labels in _list(kustomization, "labels", where):
        _add_labels(resources, labels, where)
    for image in _list(kustomization, "images", where):
        _set_image(resources, image, where)
    _fix_references(resources)
    return resources


def _read_kustomization(folder: Path) -> JsonDict:
    path = kustomization_file(folder)
    if path is None:
        raise KustomizeError(f"{folder}: no kustomization.yaml in this folder")
    loaded = yaml.safe_load(path.read_text())
    if not isinstance(loaded, dict):
        raise KustomizeError(f"{path}: not a kustomization (a YAML mapping)")
    return loaded


def _list(kustomization: Mapping[str, Any], field: str, where: str) -> list[Any]:
    value = kustomization.get(field) or []
    if not isinstance(value, list):
        raise KustomizeError(f"{where}: {field} must be a list")
    return value


def _string(kustomization: Mapping[str, Any], field: str, where: str) -> str:
    value = kustomization[field]
    if not isinstance(value, str):
        raise KustomizeError(f"{where}: {field} must be a string")
    return value


def _accumulate(folder: Path, entry: str, where: str, seen: tuple[Path, ...]) -> list[_Resource]:
    if "://" in entry or entry.startswith(("github.com/", "git@")):
        raise KustomizeError(f"{where}: remote resource {entry!r} is not implemented")
    if Path(entry).is_absolute():
        raise KustomizeError(f"{where}: resource {entry!r} must be a relative path, as kustomize requires")
    path = (folder / entry).resolve()
    if path.is_dir():
        return _build(path, None, seen)
    if not path.is_file():
        raise KustomizeError(f"{where}: resource {entry!r} does not exist")
    if not path.is_relative_to(folder):
        raise KustomizeError(f"{where}: file {entry!r} is outside the kustomization's folder (kustomize refuses it)")
    return [_Resource(document) for document in _documents(path)]


def _documents(path: Path) -> Iterator[JsonDict]:
    for document in yaml.safe_load_all(path.read_text()):
        if document is None:
            continue
        if not isinstance(document, dict) or not isinstance(document.get("metadata"), dict):
            raise KustomizeError(f"{path}: holds something other than Kubernetes objects")
        yield document


def _config_map(folder: Path, generator: Any, where: str) -> JsonDict:
    options = generator.get("options") if isinstance(generator, dict) else None
    if (
        not isinstance(generator, dict)
        or set(generator) - _GENERATOR_FIELDS
        or not isinstance(generator.get("name"), str)
        or not isinstance(options, dict)
        or set(options) - _GENERATOR_OPTIONS
        or options.get("disableNameSuffixHash") is not True
    ):
        raise KustomizeError(
            f"{where}: a configMapGenerator needs `name` and `options.disableNameSuffixHash: true`, and takes files, "
            f"literals, options.labels and options.annotations only: {generator!r}"
        )
    data: dict[str, str] = {}
    for literal in generator.get("literals") or []:
        key, equals, value = str(literal).partition("=")
        if not equals:
            raise KustomizeError(f"{where}: literal {literal!r} is not KEY=VALUE")
        data[key] = value
    for entry in generator.get("files") or []:
        key, equals, name = str(entry).partition("=")
        path = (folder / (name if equals else key)).resolve()
        if not path.is_relative_to(folder) or not path.is_file():
            raise KustomizeError(f"{where}: file {entry!r} does not exist inside the kustomization's folder")
        data[key if equals else path.name] = path.read_text()
    metadata: JsonDict = {"name": generator["name"]}
    for field in ("labels", "annotations"):
        if options.get(field):
            metadata[field] = {str(k): str(v) for k, v in options[field].items()}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


# --- patches -------------------------------------------------------------------------------------------------


def _apply_patch(folder: Path, patch: Any, resources: list[_Resource], where: str) -> list[_Resource]:
    if not isinstance(patch, dict) or set(patch) - _PATCH_FIELDS or ("patch" in patch) == ("path" in patch):
        raise KustomizeError(
            f"{where}: each patch needs `patch` or `path`, and may have a `target` (options, selectors and other "
            f"fields are not implemented): {patch!r}"
        )
    text = str(patch["patch"]) if "patch" in patch else _patch_file(folder, str(patch["path"]), where)
    body = yaml.safe_load(text)
    target = patch.get("target")
    if target is not None and (not isinstance(target, dict) or set(target) - _TARGET_FIELDS):
        raise KustomizeError(f"{where}: a patch target takes only {', '.join(sorted(_TARGET_FIELDS))}: {target!r}")
    if isinstance(body, list):
        if target is None:
            raise KustomizeError(f"{where}: a JSON 6902 patch needs a target")
        operations = jsonpatch.JsonPatch(body)
        for resource in _targets(resources, target, where):
            try:
                resource.obj = operations.apply(resource.obj)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
                raise KustomizeError(f"{where}: patch of {resource.kind} {resource.name}: {error}") from error
        return resources
    if isinstance(body, dict) and body.get("$patch") == "delete":
        if target is None:
            metadata = body.get("metadata") or {}
            target = {"kind": body.get("kind", ""), "name": metadata.get("name", "")}
        doomed = {id(resource) for resource in _targets(resources, target, where)}
        return [resource for resource in resources if id(resource) not in doomed]
    raise KustomizeError(
        f"{where}: a strategic-merge patch other than `$patch: delete` is not implemented (use JSON 6902 operations)"
    )


def _patch_file(folder: Path, entry: str, where: str) -> str:
    path = (folder / entry).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        raise KustomizeError(f"{where}: patch file {entry!r} does not exist inside the kustomization's folder")
    return path.read_text()


def _targets(resources: list[_Resource], target: Mapping[str, Any], where: str) -> list[_Resource]:
    def matches(resource: _Resource) -> bool:
        group, _, version = str(resource.obj.get("apiVersion", "")).rpartition("/")
        checks = (
            ("group", group, False),
            ("version", version, False),
            ("kind", resource.kind, True),
            ("name", resource.name, True),
            ("namespace", resource.namespace, True),
        )
        return all(
            field not in target
            or (re.fullmatch(str(target[field]), value) is not None if pattern else str(target[field]) == value)
            for field, value, pattern in checks
        )

    found = [resource for resource in resources if matches(resource)]
    if not found:
        raise KustomizeError(f"{where}: no resource matches the patch target {dict(target)!r}")
    return found


# --- namespace, prefix, labels, images -------------------------------------------------------------------------


def _set_namespace(resources: list[_Resource], namespace: str) -> None:
    for resource in resources:
        metadata = resource.obj["metadata"]
        if resource.kind == "Namespace":
            metadata["name"] = namespace
        elif resource.kind not in CLUSTER_SCOPED_KINDS:
            metadata["namespace"] = namespace
        if resource.kind in ("RoleBinding", "ClusterRoleBinding"):
            for subject in resource.obj.get("subjects") or []:
                if subject.get("kind") == "ServiceAccount" and subject.get("name") == "default":
                    subject["namespace"] = namespace
    namespaces = [resource for resource in resources if resource.kind == "Namespace"]
    if len(namespaces) > 1:
        raise KustomizeError(f"namespace {namespace!r} would give {len(namespaces)} Namespace objects one name")


def _prefix_names(resources: list[_Resource], prefix: str) -> None:
    for resource in resources:
        if resource.kind not in _UNPREFIXED_KINDS:
            resource.obj["metadata"]["name"] = prefix + resource.name


def _add_labels(resources: list[_Resource], labels: Any, where: str) -> None:
    if not isinstance(labels, dict) or set(labels) - _LABEL_FIELDS or not isinstance(labels.get("pairs"), dict):
        raise KustomizeError(f"{where}: each labels entry needs `pairs`: {labels!r}")
    if labels.get("includeSelectors") or labels.get("includeTemplates"):
        raise KustomizeError(f"{where}: labels with includeSelectors or includeTemplates are not implemented")
    for resource in resources:
        current = resource.obj["metadata"].get("labels") or {}
        resource.obj["metadata"]["labels"] = {**current, **{str(k): str(v) for k, v in labels["pairs"].items()}}


def _pod_spec(obj: JsonDict) -> JsonDict | None:
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "Pod":
        return spec if isinstance(spec, dict) else None
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    elif kind not in _POD_TEMPLATE_KINDS:
        return None
    pod = (spec.get("template") or {}).get("spec")
    return pod if isinstance(pod, dict) else None


def _containers(pod: JsonDict) -> Iterator[JsonDict]:
    for field in ("initContainers", "containers"):
        yield from (container for container in pod.get(field) or [] if isinstance(container, dict))


def split_image(image: str) -> tuple[str, str, str]:
    """(name, tag, digest) of an image reference, as kustomize splits it (a registry port is not a tag)."""
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :], digest
    return name, "", digest


def _set_image(resources: list[_Resource], image: Any, where: str) -> None:
    if not isinstance(image, dict) or set(image) - _IMAGE_FIELDS or not image.get("name"):
        raise KustomizeError(f"{where}: each images entry needs `name`, and takes newName, newTag, digest: {image!r}")
    for resource in resources:
        pod = _pod_spec(resource.obj)
        for container in _containers(pod) if pod is not None else ():
            name, tag, digest = split_image(str(container.get("image", "")))
            if name != image["name"]:
                continue
            name = str(image.get("newName", name))
            if "digest" in image:
                container["image"] = f"{name}@{image['digest']}"
            elif "newTag" in image:
                container["image"] = f"{name}:{image['newTag']}"
            else:
                container["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


# --- name references ---------------------------------------------------------------------------------------------


def _fix_references(resources: list[_Resource]) -> None:
    """Point every reference at its object's name and namespace after this level's namespace and prefix."""
    for resource in resources:
        before_namespace = resource.before[2]
        pod = _pod_spec(resource.obj)
        if pod is not None:
            _fix_pod_references(pod, resources, before_namespace)
        if resource.kind in ("RoleBinding", "ClusterRoleBinding"):
            role_ref = resource.obj.get("roleRef") or {}
            role_kind = str(role_ref.get("kind", ""))
            namespace = before_namespace if role_kind == "Role" else ""
            found = _referent(resources, role_kind, role_ref.get("name"), namespace)
            if found is not None:
                role_ref["name"] = found.name
            for subject in resource.obj.get("subjects") or []:
                if subject.get("kind") != "ServiceAccount":
                    continue
                found = _referent(resources, "ServiceAccount", subject.get("name"), subject.get("namespace"))
                if found is not None:
                    subject["name"] = found.name
                    subject["namespace"] = found.namespace


def _fix_pod_references(pod: JsonDict, resources: list[_Resource], namespace: str) -> None:
    def rename(holder: Any, field: str, kind: str) -> None:
        if isinstance(holder, dict) and isinstance(holder.get(field), str):
            found = _referent(resources, kind, holder[field], namespace)
            if found is not None:
                holder[field] = found.name

    rename(pod, "serviceAccountName", "ServiceAccount")
    rename(pod, "serviceAccount", "ServiceAccount")
    for volume in pod.get("volumes") or []:
        rename((volume or {}).get("persistentVolumeClaim"), "claimName", "PersistentVolumeClaim")
        rename((volume or {}).get("secret"), "secretName", "Secret")
        rename((volume or {}).get("configMap"), "name", "ConfigMap")
    for secret in pod.get("imagePullSecrets") or []:
        rename(secret, "name", "Secret")
    for container in _containers(pod):
        for variable in container.get("env") or []:
            source = (variable or {}).get("valueFrom") or {}
            rename(source.get("secretKeyRef"), "name", "Secret")
            rename(source.get("configMapKeyRef"), "name", "ConfigMap")
        for source in container.get("envFrom") or []:
            rename((source or {}).get("secretRef"), "name", "Secret")
            rename((source or {}).get("configMapRef"), "name", "ConfigMap")


def _referent(resources: list[_Resource], kind: str, name: Any, namespace: Any) -> _Resource | None:
    """The object a reference names, by its kind, name and namespace when this level began (None: not here)."""
    candidates = [r for r in resources if r.before[0] == kind and r.before[1] == name]
    if namespace:
        candidates = [r for r in candidates if r.before[2] in (namespace, "")]
    return candidates[0] if len(candidates) == 1 else None
