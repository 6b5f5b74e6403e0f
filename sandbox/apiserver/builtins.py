"""The built-in kinds the operator, kubectl and the sandbox use, with kube-apiserver v1.20's rules for each.

Each kind is a `ResourceType` plus its defaulting (what the server fills in on create and update), its
validation (422 field errors worded as the real validators word them), its Table columns and its field
selectors. Only what this project's clients touch is modelled; anything else in a body is stored as sent.

Kinds: namespaces, pods (+status, graceful deletion), services (+status, clusterIP allocation), secrets,
core/v1 events and events.k8s.io/v1 events (one storage, two shapes, as on a real server), leases,
endpointslices (discovery.k8s.io/v1) and customresourcedefinitions.
"""

from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
import re
from datetime import datetime
from typing import Any

from modeladapter.sandbox.apiserver.errors import FieldError, FieldErrorType, GoLiteral, bad_request, invalid
from modeladapter.sandbox.apiserver.meta import (
    label_errors,
    normalise_micro_time,
    normalise_time,
    qualified_name_errors,
)
from modeladapter.sandbox.apiserver.patches import COMMON_MERGE_KEYS
from modeladapter.sandbox.apiserver.resources import Cluster, Column, ResourceType
from modeladapter.sandbox.apiserver.selectors import dig, getters
from modeladapter.sandbox.apiserver.tables import CREATED_DESCRIPTION, age, name_column

JsonDict = dict[str, Any]
Req = FieldErrorType.REQUIRED
Inv = FieldErrorType.INVALID


def _age_column() -> Column:
    return Column(
        "Age", "string", lambda obj, now: age(obj["metadata"].get("creationTimestamp"), now), "", CREATED_DESCRIPTION
    )


def _time_field(obj: JsonDict, path: list[str | int], *, micro: bool, kind: str) -> None:
    """Normalise a time field in place as the Go decoder would, or refuse the body with a 400."""
    parent: Any = obj
    for step in path[:-1]:
        if isinstance(step, int):
            if not isinstance(parent, list) or step >= len(parent):
                return
        elif not isinstance(parent, dict) or step not in parent:
            return
        parent = parent[step]
    last = path[-1]
    if not isinstance(parent, dict) or not isinstance(last, str) or parent.get(last) is None:
        return
    value = parent[last]
    fixed = (
        normalise_micro_time(value)
        if micro and isinstance(value, str)
        else (normalise_time(value) if isinstance(value, str) else None)
    )
    if fixed is None:
        layout = "2006-01-02T15:04:05.000000Z07:00" if micro else "2006-01-02T15:04:05Z07:00"
        raise bad_request(
            f'{kind} in version "v1" cannot be handled as a {kind}: parsing time {value!r} as "{layout}": cannot parse'
        )
    parent[last] = fixed


# --- namespaces -------------------------------------------------------------------------------------------------


def _namespace_create(obj: JsonDict, _cluster: Cluster) -> JsonDict:
    obj.setdefault("spec", {})["finalizers"] = ["kubernetes"]
    obj["status"] = {"phase": "Active"}
    return obj


def _namespace_update(new: JsonDict, old: JsonDict, _cluster: Cluster) -> JsonDict:
    new["spec"] = copy.deepcopy(old.get("spec", {}))
    return new


NAMESPACES = ResourceType(
    group="",
    version="v1",
    kind="Namespace",
    plural="namespaces",
    singular="namespace",
    namespaced=False,
    short_names=("ns",),
    status_subresource=True,
    name_rule="label",
    extra_subresources=("finalize",),
    field_labels=getters("status.phase"),
    default_create=_namespace_create,
    default_update=_namespace_update,
    columns=(
        name_column(),
        Column("Status", "string", lambda o, _n: dig(o, "status.phase"), "", "The status of the namespace"),
        _age_column(),
    ),
)


# --- pods -----------------------------------------------------------------------------------------------------

POD_MERGE_KEYS = {
    **COMMON_MERGE_KEYS,
    "spec.containers": "name",
    "spec.initContainers": "name",
    "spec.containers.*.ports": "containerPort",
    "spec.containers.*.env": "name",
    "spec.containers.*.volumeMounts": "mountPath",
    "spec.volumes": "name",
    "spec.imagePullSecrets": "name",
    "status.conditions": "type",
    "status.podIPs": "ip",
}


def _image_pull_policy(image: str) -> str:
    name = image.split("@")[0]
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else ""
    return "Always" if tag in ("", "latest") and "@" not in image else "IfNotPresent"


def _default_container(container: JsonDict) -> None:
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    if isinstance(container.get("image"), str):
        container.setdefault("imagePullPolicy", _image_pull_policy(container["image"]))
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def _pod_status(status: JsonDict) -> JsonDict:
    """Keep podIP and podIPs in step, as the v1 <-> internal conversion does; normalise times."""
    pod_ip, pod_ips = status.get("podIP"), status.get("podIPs")
    if pod_ip and pod_ips and isinstance(pod_ips, list) and pod_ips and pod_ips[0].get("ip") != pod_ip:
        raise bad_request(f"conversion Error: v1.PodIP({pod_ip}) != v1.PodIPs[0]({pod_ips[0].get('ip')})")
    if pod_ip and not pod_ips:
        status["podIPs"] = [{"ip": pod_ip}]
    elif pod_ips and not pod_ip and isinstance(pod_ips, list) and isinstance(pod_ips[0], dict):
        status["podIP"] = pod_ips[0].get("ip")
    _time_field(status, ["startTime"], micro=False, kind="Pod")
    for index in range(len(status.get("conditions") or [])):
        _time_field(status, ["conditions", index, "lastTransitionTime"], micro=False, kind="Pod")
        _time_field(status, ["conditions", index, "lastProbeTime"], micro=False, kind="Pod")
    return status


def _qos_class(spec: JsonDict) -> str:
    resources = [c.get("resources") or {} for c in spec.get("containers") or [] if isinstance(c, dict)]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        r.get("limits")
        and all(r.get("requests", r["limits"]).get(k) == v for k, v in r["limits"].items())
        and {"cpu", "memory"} <= set(r["limits"])
        for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _pod_create(obj: JsonDict, _cluster: Cluster) -> JsonDict:
    spec = obj.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if isinstance(tolerations, list) and not any(isinstance(t, dict) and t.get("key") == key for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        if isinstance(container, dict):
            _default_container(container)
    obj["status"] = {"phase": "Pending", "qosClass": _qos_class(spec)}
    return obj


def _pod_update(new: JsonDict, old: JsonDict, _cluster: Cluster) -> JsonDict:
    for container in (new.get("spec") or {}).get("containers") or []:
        if isinstance(container, dict):
            _default_container(container)
    if isinstance(new.get("status"), dict):
        _pod_status(new["status"])
    return new


_MUTABLE_POD_SPEC_MESSAGE = (
    "pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, "
    "`spec.activeDeadlineSeconds` or `spec.tolerations` (only additions to existing tolerations)"
)


def _without_mutable(spec: JsonDict) -> JsonDict:
    copied = copy.deepcopy(spec)
    for key in ("containers", "initContainers"):
        for container in copied.get(key) or []:
            if isinstance(container, dict):
                container.pop("image", None)
    copied.pop("activeDeadlineSeconds", None)
    copied.pop("tolerations", None)
    return copied


def _validate_pod(obj: JsonDict, old: JsonDict | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors: list[FieldError] = []
    containers = spec.get("containers")
    if not containers:
        errors.append(FieldError(Req, "spec.containers"))
    seen: set[str] = set()
    for index, container in enumerate(containers or []):
        path = f"spec.containers[{index}]"
        if not isinstance(container, dict):
            continue
        name = container.get("name")
        if not name:
            errors.append(FieldError(Req, f"{path}.name"))
        else:
            errors.extend(FieldError(Inv, f"{path}.name", name, p) for p in label_errors(name))
            if name in seen:
                errors.append(FieldError(FieldErrorType.DUPLICATE, f"{path}.name", name))
            seen.add(name)
        if not container.get("image"):
            errors.append(FieldError(Req, f"{path}.image"))
    policy = spec.get("restartPolicy")
    if policy not in ("Always", "OnFailure", "Never"):
        errors.append(
            FieldError(
                FieldErrorType.NOT_SUPPORTED,
                "spec.restartPolicy",
                policy,
                'supported values: "Always", "OnFailure", "Never"',
            )
        )
    if old is not None and _without_mutable(spec) != _without_mutable(old.get("spec") or {}):
        errors.append(FieldError(FieldErrorType.FORBIDDEN, "spec", None, _MUTABLE_POD_SPEC_MESSAGE))
    for index, entry in enumerate((obj.get("status") or {}).get("podIPs") or []):
        ip = entry.get("ip") if isinstance(entry, dict) else None
        try:
            ipaddress.ip_address(ip or "")
        except ValueError:
            errors.append(FieldError(Inv, f"status.podIPs[{index}]", ip, "must be a valid IP address"))
    return errors


def _pod_ready(obj: JsonDict, _now: datetime) -> str:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    total = len((obj.get("spec") or {}).get("containers") or [])
    ready = sum(1 for s in statuses if isinstance(s, dict) and s.get("ready"))
    return f"{ready}/{total}"


def _pod_phase(obj: JsonDict, _now: datetime) -> str:
    status = obj.get("status") or {}
    reason = status.get("reason") or status.get("phase") or ""
    if obj["metadata"].get("deletionTimestamp"):
        return "Terminating"
    return str(reason)


def _pod_restarts(obj: JsonDict, _now: datetime) -> int:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount", 0)) for s in statuses if isinstance(s, dict))


def _none(value: object) -> str:
    return str(value) if value else "<none>"


PODS = ResourceType(
    group="",
    version="v1",
    kind="Pod",
    plural="pods",
    singular="pod",
    namespaced=True,
    short_names=("po",),
    categories=("all",),
    status_subresource=True,
    graceful_deletion=True,
    merge_keys=POD_MERGE_KEYS,
    field_labels=getters(
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    default_create=_pod_create,
    default_update=_pod_update,
    validate=_validate_pod,
    columns=(
        name_column(),
        Column("Ready", "string", _pod_ready, "", "The aggregate readiness state of this pod for accepting traffic."),
        Column("Status", "string", _pod_phase, "", "The aggregate status of the containers in this pod."),
        Column(
            "Restarts",
            "integer",
            _pod_restarts,
            "",
            "The number of times the containers in this pod have been restarted.",
        ),
        _age_column(),
        Column(
            "IP",
            "string",
            lambda o, _n: _none(dig(o, "status.podIP")),
            "",
            "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
            1,
        ),
        Column(
            "Node",
            "string",
            lambda o, _n: _none(dig(o, "spec.nodeName")),
            "",
            "NodeName is a request to schedule this pod onto a specific node.",
            1,
        ),
        Column(
            "Nominated Node",
            "string",
            lambda o, _n: _none(dig(o, "status.nominatedNodeName")),
            "",
            "nominatedNodeName is set only when this pod preempts other pods on the node.",
            1,
        ),
        Column(
            "Readiness Gates",
            "string",
            lambda o, _n: "<none>",
            "",
            "If specified, all readiness gates will be evaluated for pod readiness.",
            1,
        ),
    ),
)


# --- services ---------------------------------------------------------------------------------------------------


def _service_ports(spec: JsonDict) -> None:
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])


def _service_create(obj: JsonDict, cluster: Cluster) -> JsonDict:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    _service_ports(spec)
    if spec.get("type") != "ExternalName":
        ip = spec.get("clusterIP") or (spec.get("clusterIPs") or [""])[0]
        if not ip:
            ip = cluster.allocate_cluster_ip()
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
    obj["status"] = {"loadBalancer": {}}
    return obj


def _service_update(new: JsonDict, old: JsonDict, _cluster: Cluster) -> JsonDict:
    spec = new.setdefault("spec", {})
    old_spec = old.get("spec") or {}
    spec.setdefault("type", old_spec.get("type", "ClusterIP"))
    spec.setdefault("sessionAffinity", "None")
    _service_ports(spec)
    if old_spec.get("clusterIP") and not spec.get("clusterIP"):
        spec["clusterIP"] = old_spec["clusterIP"]
    if old_spec.get("clusterIPs") and not spec.get("clusterIPs"):
        spec["clusterIPs"] = old_spec["clusterIPs"]
    return new


SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")


def _validate_service(obj: JsonDict, old: JsonDict | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors: list[FieldError] = []
    kind = spec.get("type")
    if kind not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        errors.append(
            FieldError(
                FieldErrorType.NOT_SUPPORTED,
                "spec.type",
                kind,
                'supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"',
            )
        )
    headless = spec.get("clusterIP") == "None"
    ports = spec.get("ports") or []
    if not ports and not headless and kind != "ExternalName":
        errors.append(FieldError(Req, "spec.ports"))
    names: set[str] = set()
    for index, port in enumerate(ports):
        path = f"spec.ports[{index}]"
        if not isinstance(port, dict):
            continue
        name = port.get("name", "")
        if len(ports) > 1 and not name:
            errors.append(FieldError(Req, f"{path}.name"))
        elif name:
            errors.extend(FieldError(Inv, f"{path}.name", name, p) for p in label_errors(name))
            if name in names:
                errors.append(FieldError(FieldErrorType.DUPLICATE, f"{path}.name", name))
            names.add(name)
        number = port.get("port")
        if not isinstance(number, int) or not 1 <= number <= 65535:
            errors.append(FieldError(Inv, f"{path}.port", number, "must be between 1 and 65535, inclusive"))
        if port.get("protocol") not in ("TCP", "UDP", "SCTP"):
            errors.append(
                FieldError(
                    FieldErrorType.NOT_SUPPORTED,
                    f"{path}.protocol",
                    port.get("protocol"),
                    'supported values: "SCTP", "TCP", "UDP"',
                )
            )
    ip = spec.get("clusterIP")
    if old is None and ip and ip != "None":
        try:
            if ipaddress.ip_address(ip) not in SERVICE_CIDR:
                errors.append(
                    FieldError(
                        Inv,
                        "spec.clusterIPs",
                        [ip],
                        f"failed to allocated ip:{ip} with error:provided IP is not in the valid range. "
                        f"The range of valid IPs is {SERVICE_CIDR}",
                    )
                )
        except ValueError:
            errors.append(FieldError(Inv, "spec.clusterIP", ip, "must be empty, 'None', or a valid IP address"))
    if old is not None:
        old_ip = (old.get("spec") or {}).get("clusterIP")
        if old_ip and ip != old_ip and kind != "ExternalName":
            errors.append(
                FieldError(Inv, "spec.clusterIPs[0]", GoLiteral(f'[]string{{"{ip}"}}'), "may not change once set")
            )
    return errors


def _service_ports_cell(obj: JsonDict, _now: datetime) -> str:
    ports = (obj.get("spec") or {}).get("ports") or []
    text = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports if isinstance(p, dict))
    return text or "<none>"


def _selector_cell(obj: JsonDict, _now: datetime) -> str:
    selector = (obj.get("spec") or {}).get("selector") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"


SERVICES = ResourceType(
    group="",
    version="v1",
    kind="Service",
    plural="services",
    singular="service",
    namespaced=True,
    short_names=("svc",),
    categories=("all",),
    status_subresource=True,
    allow_create_on_update=True,
    allow_unconditional_update=False,
    unset_resource_version="",
    delete_returns_status=True,
    name_rule="dns1035",
    merge_keys={**COMMON_MERGE_KEYS, "spec.ports": "port"},
    default_create=_service_create,
    default_update=_service_update,
    validate=_validate_service,
    columns=(
        name_column(),
        Column("Type", "string", lambda o, _n: dig(o, "spec.type"), "", "The type of the service."),
        Column(
            "Cluster-IP", "string", lambda o, _n: _none(dig(o, "spec.clusterIP")), "", "The cluster IP of the service."
        ),
        Column("External-IP", "string", lambda o, _n: "<none>", "", "The external IP of the service."),
        Column("Port(s)", "string", _service_ports_cell, "", "The ports of the service."),
        _age_column(),
        Column("Selector", "string", _selector_cell, "", "The selector of the service.", 1),
    ),
)


# --- secrets ------------------------------------------------------------------------------------------------------

_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
CONFIG_KEY_MESSAGE = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)


def _secret_data(obj: JsonDict) -> JsonDict:
    data = obj.get("data") or {}
    if not isinstance(data, dict):
        raise bad_request('Secret in version "v1" cannot be handled as a Secret: data must be an object')
    for key, value in data.items():
        try:
            base64.b64decode(value if isinstance(value, str) else "", validate=True)
        except (binascii.Error, ValueError):
            raise bad_request(
                f'Secret in version "v1" cannot be handled as a Secret: v1.Secret.Data: decode base64: illegal '
                f"base64 data at input byte 0 (key {key!r})"
            ) from None
    string_data = obj.pop("stringData", None) or {}
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    if data:
        obj["data"] = data
    return obj


def _secret_create(obj: JsonDict, _cluster: Cluster) -> JsonDict:
    obj.setdefault("type", "Opaque")
    return _secret_data(obj)


def _secret_update(new: JsonDict, old: JsonDict, _cluster: Cluster) -> JsonDict:
    new.setdefault("type", old.get("type", "Opaque"))
    return _secret_data(new)


def _validate_secret(obj: JsonDict, old: JsonDict | None) -> list[FieldError]:
    errors = []
    for key in obj.get("data") or {}:
        if not _CONFIG_KEY.fullmatch(key):
            errors.append(FieldError(Inv, f"data[{key}]", key, CONFIG_KEY_MESSAGE))
    if old is not None:
        if obj.get("type") != old.get("type"):
            errors.append(FieldError(Inv, "type", obj.get("type"), "field is immutable"))
        if old.get("immutable") and (obj.get("data") != old.get("data") or not obj.get("immutable")):
            errors.append(
                FieldError(FieldErrorType.FORBIDDEN, "data", None, "field is immutable when `immutable` is set")
            )
    return errors


SECRETS = ResourceType(
    group="",
    version="v1",
    kind="Secret",
    plural="secrets",
    singular="secret",
    namespaced=True,
    field_labels=getters("type"),
    default_create=_secret_create,
    default_update=_secret_update,
    validate=_validate_secret,
    columns=(
        name_column(),
        Column("Type", "string", lambda o, _n: o.get("type", ""), "", "The type of the secret"),
        Column("Data", "string", lambda o, _n: len(o.get("data") or {}), "", "The number of data items"),
        _age_column(),
    ),
)


# --- events (core/v1 and events.k8s.io/v1 share one storage) -------------------------------------------------------

_EVENT_RENAMES = (
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
)


def _event_from_v1(obj: JsonDict) -> JsonDict:
    """events.k8s.io/v1 -> the stored (core/v1) shape."""
    stored = dict(obj)
    for core, events in _EVENT_RENAMES:
        stored.pop(core, None)
        if events in obj:
            stored[core] = obj[events]
            del stored[events]
    stored["apiVersion"], stored["kind"] = "v1", "Event"
    return stored


def _event_to_v1(stored: JsonDict) -> JsonDict:
    served = dict(stored)
    for core, events in _EVENT_RENAMES:
        served.pop(events, None)
        if core in stored:
            served[events] = stored[core]
            del served[core]
    served["apiVersion"], served["kind"] = "events.k8s.io/v1", "Event"
    if served.get("deprecatedSource") == {}:
        del served["deprecatedSource"]
    return served


def _event_times(obj: JsonDict, _cluster: Cluster) -> JsonDict:
    for field in ("firstTimestamp", "lastTimestamp"):
        _time_field(obj, [field], micro=False, kind="Event")
    _time_field(obj, ["eventTime"], micro=True, kind="Event")
    _time_field(obj, ["series", "lastObservedTime"], micro=True, kind="Event")
    obj.setdefault("source", {})
    for field in ("involvedObject", "reportingComponent", "reportingInstance"):
        if field == "involvedObject":
            obj.setdefault(field, {})
        else:
            obj.setdefault(field, "")
    obj.setdefault("firstTimestamp", None)
    obj.setdefault("lastTimestamp", None)
    obj.setdefault("eventTime", None)
    return obj


def _event_update(new: JsonDict, _old: JsonDict, cluster: Cluster) -> JsonDict:
    return _event_times(new, cluster)


def _validate_legacy_event(obj: JsonDict, _old: JsonDict | None) -> list[FieldError]:
    namespace = obj["metadata"].get("namespace", "")
    involved = (obj.get("involvedObject") or {}).get("namespace", "")
    errors = []
    if not obj.get("eventTime"):
        if (not involved and namespace not in ("", "default")) or (involved and involved != namespace):
            errors.append(FieldError(Inv, "involvedObject.namespace", involved, "does not match event.namespace"))
    else:
        if not involved and namespace != "kube-system":
            errors.append(FieldError(Inv, "involvedObject.namespace", involved, "does not match event.namespace"))
        errors.extend(_reporting_errors(obj))
    return errors


def _reporting_errors(obj: JsonDict) -> list[FieldError]:
    errors = []
    controller = obj.get("reportingComponent") or ""
    if not controller:
        errors.append(FieldError(Req, "reportingController"))
    errors.extend(FieldError(Inv, "reportingController", controller, p) for p in qualified_name_errors(controller))
    if not obj.get("reportingInstance"):
        errors.append(FieldError(Req, "reportingInstance"))
    if not obj.get("action"):
        errors.append(FieldError(Req, "action"))
    if not obj.get("reason"):
        errors.append(FieldError(Req, "reason"))
    return errors


def _validate_v1_event(obj: JsonDict, old: JsonDict | None) -> list[FieldError]:
    """events.k8s.io/v1 creates pass the legacy checks, then the strict ones (v1.20's ValidateEventCreate)."""
    if old is not None:
        return []
    errors = _validate_legacy_event(obj, None)
    if not obj.get("eventTime"):
        errors.append(FieldError(Req, "eventTime"))
    if obj.get("type") not in ("Normal", "Warning"):
        errors.append(FieldError(Inv, "type", "", f"has invalid value: {obj.get('type') or ''}"))
    if obj.get("firstTimestamp"):
        errors.append(FieldError(Inv, "firstTimestamp", "", "needs to be unset"))
    if obj.get("lastTimestamp"):
        errors.append(FieldError(Inv, "lastTimestamp", "", "needs to be unset"))
    if obj.get("count"):
        errors.append(FieldError(Inv, "count", "", "needs to be unset"))
    source = obj.get("source") or {}
    if source.get("component") or source.get("host"):
        errors.append(FieldError(Inv, "source", "", "needs to be unset"))
    return errors


EVENT_FIELDS = getters(
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "type",
    "source",
)
EVENT_FIELDS["source"] = lambda obj: dig(obj, "source.component")


def _event_object(obj: JsonDict, _now: datetime) -> str:
    involved = obj.get("involvedObject") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


def _last_seen(obj: JsonDict, now: datetime) -> str:
    stamp = obj.get("lastTimestamp") or obj.get("eventTime") or (obj.get("series") or {}).get("lastObservedTime")
    return age(stamp, now) if stamp else "<unknown>"


CORE_EVENTS = ResourceType(
    group="",
    version="v1",
    kind="Event",
    plural="events",
    singular="event",
    namespaced=True,
    short_names=("ev",),
    allow_create_on_update=True,
    storage="/events",
    field_labels=EVENT_FIELDS,
    default_create=_event_times,
    default_update=_event_update,
    validate=_validate_legacy_event,
    columns=(
        Column("Last Seen", "string", _last_seen, "", "Time when this Event was last seen"),
        Column("Type", "string", lambda o, _n: o.get("type", ""), "", "Type of this event"),
        Column("Reason", "string", lambda o, _n: o.get("reason", ""), "", "Short, machine understandable string"),
        Column("Object", "string", _event_object, "", "Object this event is about"),
        Column("Message", "string", lambda o, _n: o.get("message", ""), "", "A human-readable description"),
    ),
)

EVENTS_V1 = ResourceType(
    group="events.k8s.io",
    version="v1",
    kind="Event",
    plural="events",
    singular="event",
    namespaced=True,
    short_names=("ev",),
    allow_create_on_update=True,
    storage="/events",
    field_labels=EVENT_FIELDS,
    default_create=_event_times,
    default_update=_event_update,
    validate=_validate_v1_event,
    to_storage=_event_from_v1,
    from_storage=_event_to_v1,
    columns=CORE_EVENTS.columns,
)


# --- leases ---------------------------------------------------------------------------------------------------------


def _lease_times(obj: JsonDict, _cluster: Cluster) -> JsonDict:
    for field in ("acquireTime", "renewTime"):
        _time_field(obj, ["spec", field], micro=True, kind="Lease")
    obj.setdefault("spec", {})
    return obj


def _validate_lease(obj: JsonDict, _old: JsonDict | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and (not isinstance(duration, int) or duration <= 0):
        errors.append(FieldError(Inv, "spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if transitions is not None and (not isinstance(transitions, int) or transitions < 0):
        errors.append(FieldError(Inv, "spec.leaseTransitions", transitions, "must be greater than or equal to 0"))
    return errors


LEASES = ResourceType(
    group="coordination.k8s.io",
    version="v1",
    kind="Lease",
    plural="leases",
    singular="lease",
    namespaced=True,
    allow_create_on_update=True,
    allow_unconditional_update=False,
    invalid_kind="leases",
    default_create=_lease_times,
    default_update=lambda new, _old, cluster: _lease_times(new, cluster),
    validate=_validate_lease,
    columns=(
        name_column(),
        Column("Holder", "string", lambda o, _n: dig(o, "spec.holderIdentity"), "", "The holder of the lease"),
        _age_column(),
    ),
)


# --- endpointslices ---------------------------------------------------------------------------------------------


def _endpointslice_defaults(obj: JsonDict, _cluster: Cluster) -> JsonDict:
    for port in obj.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for endpoint in obj.get("endpoints") or []:
        if isinstance(endpoint, dict):
            endpoint.setdefault("conditions", {})
    return obj


def _validate_endpointslice(obj: JsonDict, old: JsonDict | None) -> list[FieldError]:
    errors = []
    kind = obj.get("addressType")
    if not kind:
        errors.append(FieldError(Req, "addressType"))
    elif kind not in ("IPv4", "IPv6", "FQDN"):
        errors.append(
            FieldError(FieldErrorType.NOT_SUPPORTED, "addressType", kind, 'supported values: "FQDN", "IPv4", "IPv6"')
        )
    if old is not None and old.get("addressType") != kind:
        errors.append(FieldError(Inv, "addressType", kind, "field is immutable"))
    for index, endpoint in enumerate(obj.get("endpoints") or []):
        addresses = endpoint.get("addresses") if isinstance(endpoint, dict) else None
        path = f"endpoints[{index}].addresses"
        if not addresses:
            errors.append(FieldError(Req, path, None, "must contain at least 1 address"))
            continue
        for position, address in enumerate(addresses):
            if kind in ("IPv4", "IPv6"):
                try:
                    parsed = ipaddress.ip_address(address)
                    if (kind == "IPv4") != (parsed.version == 4):
                        raise ValueError
                except ValueError:
                    errors.append(FieldError(Inv, f"{path}[{position}]", address, f"must be a valid {kind} address"))
    for index, port in enumerate(obj.get("ports") or []):
        name = port.get("name") if isinstance(port, dict) else None
        if name:
            errors.extend(FieldError(Inv, f"ports[{index}].name", name, p) for p in label_errors(name))
    return errors


def _endpoints_cell(obj: JsonDict, _now: datetime) -> str:
    addresses = [a for e in obj.get("endpoints") or [] for a in (e.get("addresses") or [])]
    if not addresses:
        return "<unset>"
    shown = ",".join(addresses[:3])
    return shown + (f" + {len(addresses) - 3} more..." if len(addresses) > 3 else "")


ENDPOINTSLICES = ResourceType(
    group="discovery.k8s.io",
    version="v1",
    kind="EndpointSlice",
    plural="endpointslices",
    singular="endpointslice",
    namespaced=True,
    has_generation=True,
    default_create=_endpointslice_defaults,
    default_update=lambda new, _old, cluster: _endpointslice_defaults(new, cluster),
    validate=_validate_endpointslice,
    columns=(
        name_column(),
        Column("AddressType", "string", lambda o, _n: o.get("addressType", ""), "", ""),
        Column(
            "Ports",
            "string",
            lambda o, _n: ",".join(str(p.get("port")) for p in o.get("ports") or []) or "<unset>",
            "",
            "",
        ),
        Column("Endpoints", "string", _endpoints_cell, "", ""),
        _age_column(),
    ),
)


# --- customresourcedefinitions --------------------------------------------------------------------------------------

CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


def _crd_create(obj: JsonDict, _cluster: Cluster) -> JsonDict:
    spec = obj.setdefault("spec", {})
    names = spec.setdefault("names", {})
    if isinstance(names.get("kind"), str):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    spec.setdefault("conversion", {"strategy": "None"})
    obj["status"] = {"acceptedNames": {"kind": "", "plural": ""}, "conditions": [], "storedVersions": []}
    return obj


def crd_established_status(obj: JsonDict, now: str) -> JsonDict:
    """The status the CRD controllers write once the names are accepted: what `kubectl wait` waits for."""
    spec = obj.get("spec") or {}
    storage = [v.get("name") for v in spec.get("versions") or [] if v.get("storage")]
    return {
        "acceptedNames": copy.deepcopy(spec.get("names") or {}),
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "lastTransitionTime": now,
                "reason": "NoConflicts",
                "message": "no conflicts found",
            },
            {
                "type": "Established",
                "status": "True",
                "lastTransitionTime": now,
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
            },
        ],
        "storedVersions": storage,
    }


def _validate_crd(obj: JsonDict, old: JsonDict | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group") or ""
    errors = []
    if not group:
        errors.append(FieldError(Req, "spec.group"))
    elif "." not in group:
        errors.append(FieldError(Inv, "spec.group", group, "should be a domain with at least one dot"))
    for field in ("plural", "kind"):
        if not names.get(field):
            errors.append(FieldError(Req, f"spec.names.{field}"))
    if names.get("plural") and group and obj["metadata"].get("name") != f"{names['plural']}.{group}":
        errors.append(
            FieldError(Inv, "metadata.name", obj["metadata"].get("name"), 'must be spec.names.plural+"."+spec.group')
        )
    scope = spec.get("scope")
    if scope not in ("Namespaced", "Cluster"):
        errors.append(
            FieldError(FieldErrorType.NOT_SUPPORTED, "spec.scope", scope, 'supported values: "Cluster", "Namespaced"')
        )
    versions = spec.get("versions") or []
    if not versions or sum(1 for v in versions if isinstance(v, dict) and v.get("storage")) != 1:
        errors.append(
            FieldError(Inv, "spec.versions", versions, "must have exactly one version marked as storage version")
        )
    for index, version in enumerate(versions):
        if isinstance(version, dict) and not (version.get("schema") or {}).get("openAPIV3Schema"):
            errors.append(
                FieldError(Req, f"spec.versions[{index}].schema.openAPIV3Schema", None, "schemas are required")
            )
    if old is not None:
        for field in ("group",):
            if (old.get("spec") or {}).get(field) != spec.get(field):
                errors.append(FieldError(Inv, f"spec.{field}", spec.get(field), "field is immutable"))
    return errors


CRDS = ResourceType(
    group="apiextensions.k8s.io",
    version="v1",
    kind="CustomResourceDefinition",
    plural="customresourcedefinitions",
    singular="customresourcedefinition",
    namespaced=False,
    short_names=("crd", "crds"),
    categories=("api-extensions",),
    status_subresource=True,
    has_generation=True,
    allow_unconditional_update=False,
    default_create=_crd_create,
    validate=_validate_crd,
    columns=(
        name_column(),
        Column("Created At", "date", lambda o, _n: o["metadata"].get("creationTimestamp"), "", CREATED_DESCRIPTION),
    ),
)


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    NAMESPACES,
    PODS,
    SERVICES,
    SECRETS,
    CORE_EVENTS,
    EVENTS_V1,
    LEASES,
    ENDPOINTSLICES,
    CRDS,
)


def check_body_shape(obj: object, resource: ResourceType) -> JsonDict:
    """A body must be a JSON object whose apiVersion/kind, if present, name this resource (400 otherwise)."""
    if not isinstance(obj, dict):
        raise bad_request(f"Object 'Kind' is missing in '{obj!r}'"[:300])
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if api_version is not None and api_version != resource.api_version:
        raise bad_request(
            f"the API version in the data ({api_version}) does not match the expected API version "
            f"({resource.api_version})"
        )
    if kind and kind != resource.kind:
        if not resource.builtin:  # the custom resource validator reports it as a field
            name = (obj.get("metadata") or {}).get("name", "") if isinstance(obj.get("metadata"), dict) else ""
            raise invalid(
                str(kind), resource.group, str(name), [FieldError(Inv, "kind", kind, f"must be {resource.kind}")]
            )
        raise bad_request(
            f'{kind} in version "{resource.version}" cannot be handled as a {resource.kind}: '
            f"converting (v1.{kind}) to (core.{resource.kind}): unknown conversion"
        )
    metadata = obj.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise bad_request(
            f'{resource.kind} in version "{resource.version}" cannot be handled as a {resource.kind}: '
            "metadata must be an object"
        )
    obj["metadata"] = metadata
    return obj
