"""A custom resource's OpenAPI v3 schema applied the way kube-apiserver v1.20 applies a structural schema.

Three passes, in the real server's order, each pure:

1. `prune`: fields the schema does not declare are dropped (unless `x-kubernetes-preserve-unknown-fields`);
2. `apply_defaults`: `default` values fill absent fields, and a `null` in a non-nullable field is replaced by
   its default or dropped;
3. `validate`: `type`, `enum`, `required`, bounds, lengths, `pattern`, `format` -> field errors worded like the
   go-openapi validator's (`spec.replicas: Unsupported value: 2: supported values: "1"`), `metadata.name` and
   `metadata.generateName` included when the CRD constrains them.

Not reproduced: the real lane's kube-apiserver v1.20.2, built with Go 1.19, refuses `""` in every typed string
field (`must be of type string: "null"`): go-openapi takes a value equal to `reflect.Zero` for null, and since
Go 1.18 or so an empty string and `reflect.Zero` share the runtime's zero value. The emulator accepts `""`, as
the official build (Go 1.15) is meant to.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime
from typing import Any

from modeladapter.sandbox.apiserver.errors import FieldError, FieldErrorType
from modeladapter.sandbox.apiserver.meta import parse_time

Schema = dict[str, Any]

_ROOT_KEPT = {"apiVersion", "kind", "metadata"}


def _declared(schema: Schema) -> tuple[dict[str, Schema], Schema | None, bool]:
    properties = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    return properties, additional if isinstance(additional, dict) else None, preserve or additional is True


def prune(value: Any, schema: Schema | None, *, root: bool = False) -> Any:
    if schema is None:
        return value
    if isinstance(value, dict) and (schema.get("type") in (None, "object")):
        properties, additional, keep_unknown = _declared(schema)
        result = {}
        for key, item in value.items():
            if root and key in _ROOT_KEPT:
                result[key] = item
            elif key in properties:
                result[key] = prune(item, properties[key])
            elif additional is not None:
                result[key] = prune(item, additional)
            elif keep_unknown or schema.get("x-kubernetes-embedded-resource"):
                result[key] = item
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(item, schema["items"]) for item in value]
    return value


def apply_defaults(value: Any, schema: Schema | None) -> Any:
    if schema is None:
        return value
    if isinstance(value, dict):
        properties, additional, _ = _declared(schema)
        result = dict(value)
        for key, child in properties.items():
            if key in result and result[key] is None and not child.get("nullable"):
                if "default" in child:
                    result[key] = copy.deepcopy(child["default"])
                else:
                    del result[key]
            elif key not in result and "default" in child:
                result[key] = copy.deepcopy(child["default"])
            if key in result:
                result[key] = apply_defaults(result[key], child)
        if additional is not None:
            for key in list(result):
                if key not in properties:
                    result[key] = apply_defaults(result[key], additional)
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(item, schema["items"]) for item in value]
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(expected: str, value: Any) -> bool:
    actual = _json_type(value)
    if expected == "number":
        return actual in {"integer", "number"}
    if expected == "integer" and isinstance(value, float):
        return value.is_integer()
    return actual == expected


def _enum_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _format_ok(fmt: str, value: str) -> bool:
    if fmt == "date-time":
        return parse_time(value, micro=False) is not None
    if fmt == "date":
        try:
            datetime.strptime(value, "%Y-%m-%d")
            return True
        except ValueError:
            return False
    return True


def validate(value: Any, schema: Schema | None, path: str = "") -> list[FieldError]:
    if schema is None:
        return []
    name = path or "."
    errors: list[FieldError] = []
    if value is None:
        if schema.get("nullable"):
            return []
        if "type" in schema:
            return [
                FieldError(
                    FieldErrorType.INVALID, path, "null", f'{name} in body must be of type {schema["type"]}: "null"'
                )
            ]
        return []
    expected = schema.get("type")
    int_or_string = schema.get("x-kubernetes-int-or-string")
    if int_or_string:
        if not isinstance(value, int | str) or isinstance(value, bool):
            errors.append(
                FieldError(
                    FieldErrorType.INVALID,
                    path,
                    _json_type(value),
                    f'{name} in body must be of type integer,string: "{_json_type(value)}"',
                )
            )
            return errors
    elif expected and not _type_ok(expected, value):
        actual = _json_type(value)
        return [
            FieldError(FieldErrorType.INVALID, path, actual, f'{name} in body must be of type {expected}: "{actual}"')
        ]
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(json.dumps(_enum_text(v)) for v in schema["enum"])
        errors.append(FieldError(FieldErrorType.NOT_SUPPORTED, path, value, f"supported values: {supported}"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema:
            low = schema["minimum"]
            if value < low or (schema.get("exclusiveMinimum") and value == low):
                word = "greater than" if schema.get("exclusiveMinimum") else "greater than or equal to"
                errors.append(FieldError(FieldErrorType.INVALID, path, value, f"{name} in body should be {word} {low}"))
        if "maximum" in schema:
            high = schema["maximum"]
            if value > high or (schema.get("exclusiveMaximum") and value == high):
                word = "less than" if schema.get("exclusiveMaximum") else "less than or equal to"
                errors.append(
                    FieldError(FieldErrorType.INVALID, path, value, f"{name} in body should be {word} {high}")
                )
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(
                FieldError(
                    FieldErrorType.INVALID,
                    path,
                    value,
                    f"{name} in body should be at most {schema['maxLength']} chars long",
                )
            )
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(
                FieldError(
                    FieldErrorType.INVALID,
                    path,
                    value,
                    f"{name} in body should be at least {schema['minLength']} chars long",
                )
            )
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            errors.append(
                FieldError(FieldErrorType.INVALID, path, value, f"{name} in body should match '{schema['pattern']}'")
            )
        if "format" in schema and not _format_ok(schema["format"], value):
            errors.append(
                FieldError(
                    FieldErrorType.INVALID, path, value, f'{name} in body must be of type {schema["format"]}: "{value}"'
                )
            )
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(
                FieldError(
                    FieldErrorType.INVALID,
                    path,
                    value,
                    f"{name} in body should have at most {schema['maxItems']} items",
                )
            )
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(
                FieldError(
                    FieldErrorType.INVALID,
                    path,
                    value,
                    f"{name} in body should have at least {schema['minItems']} items",
                )
            )
        items = schema.get("items")
        if isinstance(items, dict):
            # go-openapi (as used by kube-apiserver v1.20) names an item's field without its index:
            # `status.conditions.status`, not `status.conditions[0].status`.
            for item in value:
                errors.extend(validate(item, items, path))
    if isinstance(value, dict):
        # go-openapi reports the properties' own errors before the missing required ones.
        properties, additional, _ = _declared(schema)
        for key, item in value.items():
            child = f"{path}.{key}" if path else key
            if key in properties:
                errors.extend(validate(item, properties[key], child))
            elif additional is not None:
                errors.extend(validate(item, additional, child))
        for key in schema.get("required") or []:
            if key not in value:
                errors.append(FieldError(FieldErrorType.REQUIRED, f"{path}.{key}" if path else key))
    return errors


def root_schema(crd_version: dict[str, Any]) -> Schema | None:
    schema = (crd_version.get("schema") or {}).get("openAPIV3Schema")
    return schema if isinstance(schema, dict) else None


def prepare_custom_resource(obj: dict[str, Any], schema: Schema | None) -> tuple[dict[str, Any], list[FieldError]]:
    """Prune, default and validate a custom resource. Of `metadata`, only `name` and `generateName` are checked
    here, against what the CRD says of them (`maxLength`, `pattern`); the rest is left to the metadata rules."""
    if schema is None:
        return obj, []
    pruned = prune(obj, schema, root=True)
    defaulted = apply_defaults(pruned, schema)
    body = {k: v for k, v in defaulted.items() if k not in _ROOT_KEPT}
    body_schema = {k: v for k, v in schema.items() if k != "required"}
    body_schema["required"] = [r for r in schema.get("required") or [] if r not in _ROOT_KEPT]
    return defaulted, _metadata_errors(defaulted.get("metadata"), schema) + validate(body, body_schema)


def _metadata_errors(metadata: Any, schema: Schema) -> list[FieldError]:
    """A CRD may constrain only `metadata.name` and `metadata.generateName` (kube-apiserver refuses the CRD
    otherwise); the real server validates them with the rest of the object, after the metadata rules."""
    declared = ((schema.get("properties") or {}).get("metadata") or {}).get("properties") or {}
    if not isinstance(metadata, dict):
        return []
    errors: list[FieldError] = []
    for key in ("generateName", "name"):
        if key in declared and isinstance(metadata.get(key), str):
            errors.extend(validate(metadata[key], declared[key], f"metadata.{key}"))
    return errors
