"""Discovery documents and the OpenAPI v2 document, built from the resource types the store serves now.

kubectl reads `/api`, `/apis` and one resource list per group/version before it does anything, caches them,
and needs `groupVersion: v1` (not `/v1`), `kind`, `namespaced`, `verbs`, `shortNames` and the `…/status`
entries. A CRD's group appears here as soon as the CRD is created.

`/openapi/v2` (what kubectl 1.20 asks for before `apply` and `explain`) is built by
`modeladapter.sandbox.apiserver.openapi`, from the same resource types.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from modeladapter.sandbox.apiserver.resources import ResourceType

JsonDict = dict[str, Any]

GIT_VERSION = "v1.20.2"


def version_info() -> JsonDict:
    return {
        "major": "1",
        "minor": "20",
        "gitVersion": GIT_VERSION,
        "gitCommit": "faecb196815e248d3ecfb03c680a4507229c2a56",
        "gitTreeState": "clean",
        "buildDate": "2021-01-13T13:20:00Z",
        "goVersion": "go1.19.8",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def _server_addresses(address: str) -> list[JsonDict]:
    return [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]


def core_versions(address: str) -> JsonDict:
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": _server_addresses(address)}


def _groups(types: Iterable[ResourceType]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for resource in types:
        if resource.group:
            versions = groups.setdefault(resource.group, [])
            if resource.version not in versions:
                versions.append(resource.version)
    return groups


def _group(name: str, versions: list[str]) -> JsonDict:
    ordered = sorted(versions, key=_version_priority, reverse=True)
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in ordered]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version ordering: GA > beta > alpha, then by number."""
    import re

    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if match is None:
        return (-1, 0, 0)
    stage = {"alpha": 0, "beta": 1, None: 2}[match.group(2)]
    return (stage, int(match.group(1)), int(match.group(3) or 0))


def group_list(types: Iterable[ResourceType]) -> JsonDict:
    groups = _groups(types)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(n, v) for n, v in groups.items()]}


def group(types: Iterable[ResourceType], name: str) -> JsonDict | None:
    versions = _groups(types).get(name)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def resource_list(types: Iterable[ResourceType], group_name: str, version: str) -> JsonDict | None:
    served = [t for t in types if t.group == group_name and t.version == version]
    if not served:
        return None
    resources: list[JsonDict] = []
    for resource in sorted(served, key=lambda t: t.plural):
        entry: JsonDict = {
            "name": resource.plural,
            "singularName": resource.singular if not resource.builtin else "",
            "namespaced": resource.namespaced,
            "kind": resource.kind,
            "verbs": resource.verbs(),
        }
        if resource.short_names:
            entry["shortNames"] = list(resource.short_names)
        if resource.categories:
            entry["categories"] = list(resource.categories)
        resources.append(entry)
        for sub in (("status",) if resource.status_subresource else ()) + resource.extra_subresources:
            resources.append(
                {
                    "name": f"{resource.plural}/{sub}",
                    "singularName": "",
                    "namespaced": resource.namespaced,
                    "kind": resource.kind,
                    "verbs": ["get", "patch", "update"] if sub == "status" else ["update"],
                }
            )
    group_version = f"{group_name}/{version}" if group_name else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}
