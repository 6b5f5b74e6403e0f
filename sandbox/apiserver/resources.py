"""What the emulator knows about each kind of resource: names, scope, verbs, and the kind's own rules.

A `ResourceType` is the emulator's equivalent of a registry strategy in kube-apiserver: whether the kind has a
status subresource, a `metadata.generation`, graceful deletion; whether PUT may create or may omit the
resourceVersion; which name rule applies; which field selectors and strategic-merge keys it supports; how to
default and validate it. Built-in kinds are declared in `modeladapter.sandbox.apiserver.builtins`; a custom
resource's type is made from its CRD by `from_crd`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from modeladapter.sandbox.apiserver.errors import FieldError
from modeladapter.sandbox.apiserver.schema import Schema, prepare_custom_resource, root_schema
from modeladapter.sandbox.apiserver.selectors import FieldGetter, getters

JsonDict = dict[str, Any]


class Cluster(Protocol):
    """What a kind's rules may ask of the server while preparing an object."""

    def now(self) -> datetime: ...

    def allocate_cluster_ip(self) -> str: ...

    def cluster_ip_in_use(self, ip: str) -> bool: ...


# create(obj, cluster) -> obj: defaults a new object (the stored form) before validation.
Defaulter = Callable[[JsonDict, Cluster], JsonDict]
# update(new, old, cluster) -> new: carries server-owned fields over and defaults an update.
UpdateDefaulter = Callable[[JsonDict, JsonDict, Cluster], JsonDict]
# validate(obj, old or None) -> field errors (empty when valid).
Validator = Callable[[JsonDict, JsonDict | None], list[FieldError]]
# Converts between the stored form and the form served at this group/version (events.k8s.io/v1 <-> v1).
Converter = Callable[[JsonDict], JsonDict]


def _keep(obj: JsonDict, _cluster: Cluster) -> JsonDict:
    return obj


def _keep_update(new: JsonDict, _old: JsonDict, _cluster: Cluster) -> JsonDict:
    return new


def _no_errors(_obj: JsonDict, _old: JsonDict | None) -> list[FieldError]:
    return []


def _identity(obj: JsonDict) -> JsonDict:
    return obj


@dataclass(frozen=True)
class Column:
    """A Table column: its definition and how to compute a cell (None prints as `<none>`)."""

    name: str
    type: str
    cell: Callable[[JsonDict, datetime], Any]
    format: str = ""
    description: str = ""
    priority: int = 0

    def definition(self) -> JsonDict:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    has_generation: bool = False
    builtin: bool = True
    allow_create_on_update: bool = False
    allow_unconditional_update: bool = True
    graceful_deletion: bool = False
    delete_returns_status: bool = False
    name_rule: str = "subdomain"
    storage: str = ""  # shared storage key (events); defaults to group/plural
    invalid_kind: str = ""  # the kind a 422 names, when the real server names another (leases: "leases")
    unset_resource_version: object = None  # how a 422 shows a missing resourceVersion (Go %#v of the field)
    merge_keys: Mapping[str, str] = field(default_factory=dict)
    field_labels: Mapping[str, FieldGetter] = field(default_factory=getters)
    default_create: Defaulter = _keep
    default_update: UpdateDefaulter = _keep_update
    validate: Validator = _no_errors
    to_storage: Converter = _identity
    from_storage: Converter = _identity
    columns: tuple[Column, ...] = ()
    schema: Schema | None = None
    extra_subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> str:
        return self.storage or f"{self.group}/{self.plural}"

    @property
    def group_resource(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def verbs(self) -> list[str]:
        return ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def crd_served_types(crd: JsonDict) -> list[ResourceType]:
    """One ResourceType per served version of a CRD, with its schema, printer columns and subresources."""
    from modeladapter.sandbox.apiserver.tables import crd_columns

    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    kind = names.get("kind", "")
    result = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        schema = root_schema(version)
        status = "status" in (version.get("subresources") or {})
        result.append(
            ResourceType(
                group=spec.get("group", ""),
                version=version.get("name", ""),
                kind=kind,
                plural=names.get("plural", ""),
                singular=names.get("singular") or kind.lower(),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_subresource=status,
                has_generation=True,
                builtin=False,
                allow_create_on_update=False,
                allow_unconditional_update=False,
                delete_returns_status=True,
                schema=schema,
                validate=_schema_validator(schema),
                default_create=_schema_defaulter(schema),
                default_update=_schema_update_defaulter(schema),
                columns=crd_columns(version.get("additionalPrinterColumns") or []),
            )
        )
    return result


def _schema_defaulter(schema: Schema | None) -> Defaulter:
    def default(obj: JsonDict, _cluster: Cluster) -> JsonDict:
        prepared, _ = prepare_custom_resource(obj, schema)
        return prepared

    return default


def _schema_update_defaulter(schema: Schema | None) -> UpdateDefaulter:
    def default(new: JsonDict, _old: JsonDict, _cluster: Cluster) -> JsonDict:
        prepared, _ = prepare_custom_resource(new, schema)
        return prepared

    return default


def _schema_validator(schema: Schema | None) -> Validator:
    def validate(obj: JsonDict, _old: JsonDict | None) -> list[FieldError]:
        _, errors = prepare_custom_resource(obj, schema)
        return errors

    return validate
