"""The kinds an install of the operator creates (`deploy/` rendered by `modeladapter manifests`), so that every
base applies to the emulator with `kubectl apply`: ServiceAccounts, ConfigMaps, PersistentVolumeClaims, RBAC
(Roles, ClusterRoles and their bindings), apps/v1 Deployments and policy/v1 PodDisruptionBudgets.

They are stored kinds: nothing acts on them (no controller creates a Deployment's pods, no volume binds a
claim), since the emulator only has to hold them as kube-apiserver would. Each gets the defaulting and the
validation of its required fields that kube-apiserver does, with its field errors' wording; the rest of a body is
stored as sent. policy/v1 PodDisruptionBudget is served although the emulator otherwise answers as v1.20 (where
it is policy/v1beta1): the bases are written for current clusters, which no longer serve v1beta1.
"""

from __future__ import annotations

import re
from typing import Any

from modeladapter.sandbox.apiserver.errors import FieldError, FieldErrorType
from modeladapter.sandbox.apiserver.patches import COMMON_MERGE_KEYS
from modeladapter.sandbox.apiserver.resources import Cluster, Column, ResourceType
from modeladapter.sandbox.apiserver.tables import CREATED_DESCRIPTION, age, name_column

JsonDict = dict[str, Any]
Req = FieldErrorType.REQUIRED
Inv = FieldErrorType.INVALID
Unsupported = FieldErrorType.NOT_SUPPORTED
RBAC_GROUP = "rbac.authorization.k8s.io"
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")


def _age() -> Column:
    return Column(
        "Age", "string", lambda o, now: age(o["metadata"].get("creationTimestamp"), now), "", CREATED_DESCRIPTION
    )


def _at(obj: Any, path: str) -> Any:
    """The value at a dotted path, None when any step is missing or not an object."""
    for step in path.split("."):
        obj = obj.get(step) if isinstance(obj, dict) else None
    return obj


def _stored(group: str, version: str, kind: str, plural: str, *, namespaced: bool = True, **rules: Any) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        kind=kind,
        plural=plural,
        singular=kind.lower(),
        namespaced=namespaced,
        columns=(name_column(), _age()),
        **rules,
    )


# --- ServiceAccounts and ConfigMaps ------------------------------------------------------------------------------


def _validate_config_map(obj: JsonDict, _old: JsonDict | None) -> list[FieldError]:
    message = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
    return [
        FieldError(Inv, f"data[{key}]", key, message)
        for field in ("data", "binaryData")
        for key in obj.get(field) or {}
        if not _CONFIG_KEY.fullmatch(str(key))
    ]


SERVICE_ACCOUNTS = _stored("", "v1", "ServiceAccount", "serviceaccounts", short_names=("sa",))
CONFIG_MAPS = _stored("", "v1", "ConfigMap", "configmaps", short_names=("cm",), validate=_validate_config_map)


# --- PersistentVolumeClaims --------------------------------------------------------------------------------------

_ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")


def _claim_defaults(obj: JsonDict, _cluster: Cluster) -> JsonDict:
    spec = obj.setdefault("spec", {})
    if isinstance(spec, dict):
        spec.setdefault("volumeMode", "Filesystem")
    obj["status"] = {"phase": "Pending"}
    return obj


def _claim_update(new: JsonDict, old: JsonDict, cluster: Cluster) -> JsonDict:
    _claim_defaults(new, cluster)
    new["status"] = old.get("status", {"phase": "Pending"})
    return new


def _validate_claim(obj: JsonDict, old: JsonDict | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors = []
    modes = spec.get("accessModes") or []
    if not modes:
        errors.append(FieldError(Req, "spec.accessModes", None, "at least 1 access mode is required"))
    errors.extend(
        FieldError(Unsupported, "spec.accessModes", mode, ", ".join(f'"{m}"' for m in _ACCESS_MODES))
        for mode in modes
        if mode not in _ACCESS_MODES
    )
    if not _at(obj, "spec.resources.requests.storage"):
        errors.append(FieldError(Req, "spec.resources[storage]"))
    if old is not None:
        unchanged = {k: v for k, v in spec.items() if k != "resources"}
        before = {k: v for k, v in (old.get("spec") or {}).items() if k != "resources"}
        if unchanged != before:
            errors.append(
                FieldError(
                    FieldErrorType.FORBIDDEN, "spec", None, "spec is immutable after creation except resources.requests"
                )
            )
    return errors


PERSISTENT_VOLUME_CLAIMS = _stored(
    "",
    "v1",
    "PersistentVolumeClaim",
    "persistentvolumeclaims",
    short_names=("pvc",),
    status_subresource=True,
    default_create=_claim_defaults,
    default_update=_claim_update,
    validate=_validate_claim,
)


# --- RBAC ----------------------------------------------------------------------------------------------------


def _validate_rules(obj: JsonDict, *, cluster_role: bool) -> list[FieldError]:
    errors = []
    for index, rule in enumerate(obj.get("rules") or []):
        path = f"rules[{index}]"
        if not isinstance(rule, dict):
            errors.append(FieldError(Inv, path, rule, "must be an object"))
            continue
        if not rule.get("verbs"):
            errors.append(FieldError(Req, f"{path}.verbs", None, "verbs must contain at least one value"))
        if rule.get("nonResourceURLs"):
            if not cluster_role:
                errors.append(
                    FieldError(
                        Inv,
                        f"{path}.nonResourceURLs",
                        rule["nonResourceURLs"],
                        "namespaced rules cannot apply to non-resource URLs",
                    )
                )
        elif not rule.get("apiGroups"):
            errors.append(
                FieldError(Req, f"{path}.apiGroups", None, "resource rules must supply at least one api group")
            )
        elif not rule.get("resources"):
            errors.append(
                FieldError(Req, f"{path}.resources", None, "resource rules must supply at least one resource")
            )
    return errors


def _validate_binding(obj: JsonDict, old: JsonDict | None, *, cluster_binding: bool) -> list[FieldError]:
    errors = []
    role_ref = obj.get("roleRef") or {}
    kinds = ("ClusterRole",) if cluster_binding else ("Role", "ClusterRole")
    if role_ref.get("apiGroup") != RBAC_GROUP:
        errors.append(
            FieldError(
                Unsupported, "roleRef.apiGroup", role_ref.get("apiGroup", ""), f'supported values: "{RBAC_GROUP}"'
            )
        )
    if role_ref.get("kind") not in kinds:
        supported = ", ".join(f'"{kind}"' for kind in kinds)
        errors.append(
            FieldError(Unsupported, "roleRef.kind", role_ref.get("kind", ""), f"supported values: {supported}")
        )
    if not role_ref.get("name"):
        errors.append(FieldError(Req, "roleRef.name"))
    for index, subject in enumerate(obj.get("subjects") or []):
        path = f"subjects[{index}]"
        kind = (subject or {}).get("kind")
        if kind not in ("ServiceAccount", "User", "Group"):
            errors.append(FieldError(Unsupported, f"{path}.kind", kind, '"Group", "ServiceAccount", "User"'))
        if not (subject or {}).get("name"):
            errors.append(FieldError(Req, f"{path}.name"))
        if kind == "ServiceAccount" and cluster_binding and not subject.get("namespace"):
            errors.append(FieldError(Req, f"{path}.namespace"))
    if old is not None and old.get("roleRef") != obj.get("roleRef"):
        errors.append(FieldError(Inv, "roleRef", obj.get("roleRef"), "cannot change roleRef"))
    return errors


ROLES = _stored(RBAC_GROUP, "v1", "Role", "roles", validate=lambda o, _old: _validate_rules(o, cluster_role=False))
CLUSTER_ROLES = _stored(
    RBAC_GROUP,
    "v1",
    "ClusterRole",
    "clusterroles",
    namespaced=False,
    validate=lambda o, _old: _validate_rules(o, cluster_role=True),
)
ROLE_BINDINGS = _stored(
    RBAC_GROUP,
    "v1",
    "RoleBinding",
    "rolebindings",
    validate=lambda o, old: _validate_binding(o, old, cluster_binding=False),
)
CLUSTER_ROLE_BINDINGS = _stored(
    RBAC_GROUP,
    "v1",
    "ClusterRoleBinding",
    "clusterrolebindings",
    namespaced=False,
    validate=lambda o, old: _validate_binding(o, old, cluster_binding=True),
)


# --- Deployments -------------------------------------------------------------------------------------------------

DEPLOYMENT_MERGE_KEYS = {
    **COMMON_MERGE_KEYS,
    "spec.template.spec.containers": "name",
    "spec.template.spec.initContainers": "name",
    "spec.template.spec.containers.*.ports": "containerPort",
    "spec.template.spec.containers.*.env": "name",
    "spec.template.spec.containers.*.volumeMounts": "mountPath",
    "spec.template.spec.volumes": "name",
    "spec.template.spec.imagePullSecrets": "name",
    "spec.template.spec.topologySpreadConstraints": "topologyKey",
    "status.conditions": "type",
}


def _deployment_defaults(obj: JsonDict, _cluster: Cluster) -> JsonDict:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return obj
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    for container in _at(obj, "spec.template.spec.containers") or []:
        if isinstance(container, dict):
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            for port in container.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
    pod = _at(obj, "spec.template.spec")
    if isinstance(pod, dict):
        pod.setdefault("restartPolicy", "Always")
        pod.setdefault("dnsPolicy", "ClusterFirst")
        pod.setdefault("schedulerName", "default-scheduler")
        pod.setdefault("securityContext", {})
        pod.setdefault("terminationGracePeriodSeconds", 30)
    return obj


def _deployment_update(new: JsonDict, old: JsonDict, cluster: Cluster) -> JsonDict:
    _deployment_defaults(new, cluster)
    if "status" in old:
        new["status"] = old["status"]
    return new


def _selector_matches(selector: JsonDict, labels: JsonDict) -> bool:
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        present, values = expression.get("key") in labels, expression.get("values") or []
        operator = expression.get("operator")
        if operator == "In" and labels.get(expression.get("key")) not in values:
            return False
        if operator == "NotIn" and labels.get(expression.get("key")) in values:
            return False
        if (operator == "Exists") != present and operator in ("Exists", "DoesNotExist"):
            return False
    return True


def _validate_deployment(obj: JsonDict, old: JsonDict | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors = []
    selector = spec.get("selector")
    labels = _at(obj, "spec.template.metadata.labels") or {}
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        errors.append(FieldError(Req, "spec.selector"))
    elif not _selector_matches(selector, labels):
        errors.append(
            FieldError(Inv, "spec.template.metadata.labels", labels, "`selector` does not match template `labels`")
        )
    replicas = spec.get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        errors.append(FieldError(Inv, "spec.replicas", replicas, "must be greater than or equal to 0"))
    strategy = spec.get("strategy") or {}
    if strategy.get("type") not in ("Recreate", "RollingUpdate"):
        errors.append(
            FieldError(Unsupported, "spec.strategy.type", strategy.get("type"), '"Recreate", "RollingUpdate"')
        )
    elif strategy["type"] == "Recreate" and strategy.get("rollingUpdate"):
        errors.append(
            FieldError(
                FieldErrorType.FORBIDDEN,
                "spec.strategy.rollingUpdate",
                None,
                "may not be specified when strategy `type` is 'Recreate'",
            )
        )
    containers = _at(obj, "spec.template.spec.containers") or []
    if not containers:
        errors.append(FieldError(Req, "spec.template.spec.containers"))
    for index, container in enumerate(containers):
        for field in ("name", "image"):
            if not (container or {}).get(field):
                errors.append(FieldError(Req, f"spec.template.spec.containers[{index}].{field}"))
    if old is not None and (old.get("spec") or {}).get("selector") != selector:
        errors.append(FieldError(Inv, "spec.selector", selector, "field is immutable"))
    return errors


DEPLOYMENTS = _stored(
    "apps",
    "v1",
    "Deployment",
    "deployments",
    short_names=("deploy",),
    categories=("all",),
    status_subresource=True,
    has_generation=True,
    merge_keys=DEPLOYMENT_MERGE_KEYS,
    default_create=_deployment_defaults,
    default_update=_deployment_update,
    validate=_validate_deployment,
)


# --- PodDisruptionBudgets ----------------------------------------------------------------------------------------


def _validate_disruption_budget(obj: JsonDict, _old: JsonDict | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors = []
    if "minAvailable" in spec and "maxUnavailable" in spec:
        errors.append(FieldError(Inv, "spec", spec, "minAvailable and maxUnavailable cannot be both set"))
    for field in ("minAvailable", "maxUnavailable"):
        value = spec.get(field)
        if isinstance(value, int) and value < 0:
            errors.append(FieldError(Inv, f"spec.{field}", value, "must be greater than or equal to 0"))
        elif isinstance(value, str) and not re.fullmatch(r"\d+%", value):
            errors.append(
                FieldError(
                    Inv,
                    f"spec.{field}",
                    value,
                    "a valid percent string must be a numeric string followed by an ending '%'",
                )
            )
    return errors


POD_DISRUPTION_BUDGETS = _stored(
    "policy",
    "v1",
    "PodDisruptionBudget",
    "poddisruptionbudgets",
    short_names=("pdb",),
    status_subresource=True,
    has_generation=True,
    validate=_validate_disruption_budget,
)


INSTALL_TYPES: tuple[ResourceType, ...] = (
    SERVICE_ACCOUNTS,
    CONFIG_MAPS,
    PERSISTENT_VOLUME_CLAIMS,
    ROLES,
    CLUSTER_ROLES,
    ROLE_BINDINGS,
    CLUSTER_ROLE_BINDINGS,
    DEPLOYMENTS,
    POD_DISRUPTION_BUDGETS,
)
