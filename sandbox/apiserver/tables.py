"""Server-side `Table` rendering, which `kubectl get` asks for with `Accept: application/json;as=Table`.

kubectl 1.20 prints whatever columns the server returns: a custom resource's `additionalPrinterColumns`
(evaluated as simple JSONPaths, `date` columns shown as an age such as `5m10s`) and, for built-in kinds, the
columns kube-apiserver's own printers produce. The age wording is `duration.HumanDuration`'s.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from modeladapter.sandbox.apiserver.meta import parse_time
from modeladapter.sandbox.apiserver.resources import Column, ResourceType

JsonDict = dict[str, Any]

NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although some resources may "
    "allow a client to request the generation of an appropriate name automatically. Name is primarily intended "
    "for creation idempotence and configuration definition. Cannot be updated. More info: "
    "http://kubernetes.io/docs/user-guide/identifiers#names"
)
CREATED_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not "
    "guaranteed to be set in happens-before order across separate operations. Clients may not set this value. "
    "It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More "
    "info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)


def human_duration(seconds_total: float) -> str:
    """`k8s.io/apimachinery/pkg/util/duration.HumanDuration`."""
    seconds = int(seconds_total)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        return f"{hours // 24 // 365}y{(hours // 24) % 365}d"
    return f"{hours // 24 // 365}y"


def age(timestamp: object, now: datetime) -> str:
    if not isinstance(timestamp, str):
        return "<unknown>"
    moment = parse_time(timestamp, micro=False)
    if moment is None:
        return "<invalid>"
    return human_duration((now - moment).total_seconds())


_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")


def json_path(obj: Any, path: str) -> tuple[bool, Any]:
    """Evaluate a simple JSONPath (`.a.b`, `.a[0].b`, with or without `{}`); (found, value)."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    current = obj
    position = 0
    for match in _STEP.finditer(text):
        if match.start() != position:
            return False, None
        position = match.end()
        if match.group(1) is not None:
            if not isinstance(current, dict) or match.group(1) not in current:
                return False, None
            current = current[match.group(1)]
        else:
            index = int(match.group(2))
            if not isinstance(current, list) or index >= len(current):
                return False, None
            current = current[index]
    return position == len(text), current


def _crd_cell(column_type: str, json_path_text: str) -> Any:
    def cell(obj: JsonDict, now: datetime) -> Any:
        found, value = json_path(obj, json_path_text)
        if not found or value is None:
            return None
        if column_type == "string":
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, dict | list):
                import json

                return json.dumps(value, separators=(",", ":"))
            return str(value)
        if column_type == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
        if column_type == "number" and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if column_type == "boolean" and isinstance(value, bool):
            return value
        if column_type == "date" and isinstance(value, str):
            return age(value, now)
        return None

    return cell


def name_column() -> Column:
    return Column("Name", "string", lambda obj, _now: obj["metadata"]["name"], "name", NAME_DESCRIPTION)


def crd_columns(printer_columns: Sequence[JsonDict]) -> tuple[Column, ...]:
    if not printer_columns:
        return (
            name_column(),
            Column(
                "Age",
                "date",
                lambda obj, now: age(obj["metadata"].get("creationTimestamp"), now),
                "",
                CREATED_DESCRIPTION,
            ),
        )
    columns = [name_column()]
    for spec in printer_columns:
        columns.append(
            Column(
                name=spec.get("name", ""),
                type=spec.get("type", "string"),
                cell=_crd_cell(spec.get("type", "string"), spec.get("jsonPath", "")),
                format=spec.get("format", ""),
                description=spec.get("description", ""),
                priority=int(spec.get("priority", 0)),
            )
        )
    return tuple(columns)


def default_columns() -> tuple[Column, ...]:
    """kube-apiserver's default table for kinds without a printer: Name and Created At."""
    return (
        name_column(),
        Column(
            "Created At", "date", lambda obj, _now: obj["metadata"].get("creationTimestamp"), "", CREATED_DESCRIPTION
        ),
    )


def partial_metadata(obj: JsonDict) -> JsonDict:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def table(
    resource: ResourceType,
    objects: Sequence[JsonDict],
    *,
    list_metadata: JsonDict,
    table_version: str,
    include_object: str,
    now: datetime | None = None,
) -> JsonDict:
    moment = now or datetime.now(UTC)
    columns = resource.columns or default_columns()
    rows = []
    for obj in objects:
        row: JsonDict = {"cells": [column.cell(obj, moment) for column in columns]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = partial_metadata(obj)
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": f"meta.k8s.io/{table_version}",
        "metadata": list_metadata,
        "columnDefinitions": [column.definition() for column in columns],
        "rows": rows,
    }
