"""`/openapi/v2` with the served CRDs' schemas in it, as kube-apiserver v1.20 publishes them.

kubectl 1.20 reads this document (as gnostic's `openapi_v2.Document` protobuf) for two things: `kubectl explain`,
which finds a kind by its definition's `x-kubernetes-group-version-kind` and prints the descriptions, and the
client-side validation of `apply`/`create`, which refuses unknown fields and wrong types of the kinds described.

Each served CRD version with a schema becomes two definitions, named as the real server names them (the group
reversed: `ai.aibrix.model.v1alpha1.ModelAdapter` and `...ModelAdapterList`). The schema is converted the way
apiextensions-apiserver's `ToStructuralOpenAPIV2` does for v2: `default`, `allOf`/`anyOf`/`oneOf`/`not` are
dropped; a `nullable` field or one with `x-kubernetes-int-or-string` loses its type, and a nullable or
`x-kubernetes-preserve-unknown-fields` one its `properties` and `items` (kubectl could not cope); a nullable
property is no longer `required`; the root's `apiVersion`, `kind` and `metadata` are the standard ones, with
`metadata` a reference to `ObjectMeta`. `ObjectMeta`, `ListMeta` and what they refer to are served verbatim, as
taken from kube-apiserver v1.20.2 (`openapi_meta.json`). Built-in kinds are not described, so kubectl skips
their validation, as it does for any kind the document does not describe.

The protobuf form is hand-encoded: only `Document`, `Info`, `Definitions` and `Schema` (with the messages a
schema holds) are needed, and the wire format of those is a few lines.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any, Final

from modeladapter.sandbox.apiserver.resources import ResourceType

JsonDict = dict[str, Any]

OBJECT_META: Final = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
LIST_META: Final = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"
_CONVENTIONS: Final = "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
API_VERSION: Final = {
    "description": "APIVersion defines the versioned schema of this representation of an object. Servers should "
    "convert recognized schemas to the latest internal value, and may reject unrecognized values. "
    f"{_CONVENTIONS}#resources",
    "type": "string",
}
KIND: Final = {
    "description": "Kind is a string value representing the REST resource this object represents. Servers may infer "
    "this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. "
    f"{_CONVENTIONS}#types-kinds",
    "type": "string",
}
_DROPPED: Final = ("default", "allOf", "anyOf", "oneOf", "not")


@cache
def _meta_definitions() -> JsonDict:
    text = resources.files("modeladapter.sandbox.apiserver").joinpath("openapi_meta.json").read_text()
    loaded: JsonDict = json.loads(text)
    return loaded


def definition_name(group: str, version: str, kind: str) -> str:
    """`model.aibrix.ai`, `v1alpha1`, `ModelAdapter` -> `ai.aibrix.model.v1alpha1.ModelAdapter`."""
    return ".".join([*reversed(group.split(".")), version, kind])


def to_v2(schema: JsonDict) -> JsonDict:
    """One OpenAPI v3 structural schema as the v2 document shows it (see the module docstring)."""
    out = {key: value for key, value in schema.items() if key not in _DROPPED}
    if out.pop("nullable", False):
        out.pop("type", None)
        out.pop("items", None)
        out.pop("properties", None)
    if out.get("x-kubernetes-preserve-unknown-fields"):
        out.pop("items", None)
        out.pop("properties", None)
    if out.get("type") == "array" and "items" not in out:
        del out["type"]
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    properties = out.get("properties")
    if isinstance(properties, dict):
        nullable = {name for name, child in properties.items() if isinstance(child, dict) and child.get("nullable")}
        if nullable and "required" in out:
            out["required"] = [name for name in out["required"] if name not in nullable]
        out["properties"] = {name: to_v2(child) for name, child in properties.items()}
    if isinstance(out.get("items"), dict):
        out["items"] = to_v2(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = to_v2(out["additionalProperties"])
    return out


def _gvk(group: str, version: str, kind: str) -> list[JsonDict]:
    return [{"group": group, "kind": kind, "version": version}]


def crd_definitions(resource: ResourceType) -> JsonDict:
    """The definitions of one served CRD version: the kind and its list."""
    if resource.schema is None:
        return {}
    root = to_v2(resource.schema)
    root["properties"] = {
        **(root.get("properties") or {}),
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "description": f"Standard object's metadata. {_CONVENTIONS}#metadata",
            "$ref": f"#/definitions/{OBJECT_META}",
        },
    }
    root["x-kubernetes-group-version-kind"] = _gvk(resource.group, resource.version, resource.kind)
    name = definition_name(resource.group, resource.version, resource.kind)
    listed = {
        "description": f"{resource.kind}List is a list of {resource.kind}",
        "required": ["items"],
        "properties": {
            "apiVersion": API_VERSION,
            "items": {
                "description": f"List of {resource.plural}. {_CONVENTIONS}",
                "type": "array",
                "items": {"$ref": f"#/definitions/{name}"},
            },
            "kind": KIND,
            "metadata": {
                "description": f"Standard list metadata. {_CONVENTIONS}#types-kinds",
                "$ref": f"#/definitions/{LIST_META}",
            },
        },
        "x-kubernetes-group-version-kind": _gvk(resource.group, resource.version, f"{resource.kind}List"),
    }
    return {name: root, f"{name}List": listed}


def document(types: Iterable[ResourceType], version: str) -> JsonDict:
    """The whole `/openapi/v2` document: the served CRDs and the metadata definitions they refer to."""
    definitions: JsonDict = {}
    for resource in types:
        if not resource.builtin:
            definitions.update(crd_definitions(resource))
    if definitions:
        definitions.update(_meta_definitions())
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": version},
        "paths": {},
        "definitions": dict(sorted(definitions.items())),
    }


# --- gnostic openapi_v2 protobuf ---------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64s as two's complement, as protobuf writes them
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _message(field_number: int, payload: bytes) -> bytes:
    return _varint(field_number << 3 | 2) + _varint(len(payload)) + payload


def _string(field_number: int, text: str) -> bytes:
    return _message(field_number, text.encode()) if text else b""


def _integer(field_number: int, value: int) -> bytes:
    return _varint(field_number << 3) + _varint(value) if value else b""


def _double(field_number: int, value: float) -> bytes:
    return _varint(field_number << 3 | 1) + struct.pack("<d", float(value)) if value else b""


def _any(field_number: int, value: Any) -> bytes:
    """gnostic's `Any{yaml}`: the value written as YAML (JSON is YAML)."""
    return _message(field_number, _string(2, json.dumps(value)))


def _named(field_number: int, name: str, value: bytes) -> bytes:
    return _message(field_number, _string(1, name) + _message(2, value))


# Schema's scalar fields: JSON key -> (field number, encoder).
_SCHEMA_STRINGS: Final = {"$ref": 1, "format": 2, "title": 3, "description": 4, "pattern": 13, "discriminator": 26}
_SCHEMA_DOUBLES: Final = {"multipleOf": 6, "maximum": 7, "minimum": 9}
_SCHEMA_INTEGERS: Final = {
    "exclusiveMaximum": 8,
    "exclusiveMinimum": 10,
    "maxLength": 11,
    "minLength": 12,
    "maxItems": 14,
    "minItems": 15,
    "uniqueItems": 16,
    "maxProperties": 17,
    "minProperties": 18,
    "readOnly": 27,
}


def encode_schema(schema: JsonDict) -> bytes:
    """A JSON schema as gnostic's `openapi_v2.Schema`, fields in field-number order."""
    fields: list[tuple[int, bytes]] = []
    for key, value in schema.items():
        if key in _SCHEMA_STRINGS:
            fields.append((_SCHEMA_STRINGS[key], _string(_SCHEMA_STRINGS[key], value)))
        elif key in _SCHEMA_DOUBLES:
            fields.append((_SCHEMA_DOUBLES[key], _double(_SCHEMA_DOUBLES[key], value)))
        elif key in _SCHEMA_INTEGERS:
            fields.append((_SCHEMA_INTEGERS[key], _integer(_SCHEMA_INTEGERS[key], int(value))))
        elif key == "default":
            fields.append((5, _any(5, value)))
        elif key == "required":
            fields.append((19, b"".join(_string(19, name) for name in value)))
        elif key == "enum":
            fields.append((20, b"".join(_any(20, item) for item in value)))
        elif key == "additionalProperties":
            item = _message(1, encode_schema(value)) if isinstance(value, dict) else _integer(2, int(bool(value)))
            fields.append((21, _message(21, item)))
        elif key == "type":
            types = value if isinstance(value, list) else [value]
            fields.append((22, _message(22, b"".join(_string(1, t) for t in types))))
        elif key == "items":
            items = value if isinstance(value, list) else [value]
            fields.append((23, _message(23, b"".join(_message(1, encode_schema(i)) for i in items))))
        elif key == "allOf":
            fields.append((24, b"".join(_message(24, encode_schema(s)) for s in value)))
        elif key == "properties":
            named = b"".join(_named(1, name, encode_schema(child)) for name, child in sorted(value.items()))
            fields.append((25, _message(25, named)))
        elif key == "example":
            fields.append((30, _any(30, value)))
        elif key.startswith("x-"):
            fields.append((31, _named(31, key, _string(2, json.dumps(value)))))
    return b"".join(payload for _, payload in sorted(fields, key=lambda field: field[0]))


def encode_document(document: JsonDict) -> bytes:
    """The document as gnostic's `openapi_v2.Document`: swagger, info and definitions (kubectl reads no more)."""
    info = document.get("info") or {}
    definitions = b"".join(
        _named(1, name, encode_schema(schema)) for name, schema in (document.get("definitions") or {}).items()
    )
    return (
        _string(1, document.get("swagger", "2.0"))
        + _message(2, _string(1, info.get("title", "")) + _string(2, info.get("version", "")))
        + (_message(9, definitions) if definitions else b"")
    )
