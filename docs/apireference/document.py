"""Walk the CRD's schema into `Field`s and render them as Markdown."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from modeladapter.operator.kube.manifests import modeladapter_crd

Schema = dict[str, Any]


@dataclass(frozen=True)
class Field:
    path: str
    """As `kubectl explain` takes it: `spec.podSelector.matchExpressions.operator` (no index for list items)."""
    schema: Schema
    required: bool

    @property
    def type(self) -> str:
        return _type(self.schema)

    @property
    def rules(self) -> list[str]:
        schema, rules = self.schema, ["required"] if self.required else []
        if "default" in schema:
            rules.append(f"default `{json.dumps(schema['default'])}`")
        if "enum" in schema:
            rules.append("one of " + ", ".join(f"`{json.dumps(value)}`" for value in schema["enum"]))
        if "pattern" in schema:
            rules.append(f"matches `{schema['pattern']}`")
        if "minimum" in schema and "maximum" in schema:
            rules.append(f"{schema['minimum']} to {schema['maximum']}")
        elif "minimum" in schema:
            rules.append(f"at least {schema['minimum']}")
        if "minLength" in schema:
            rules.append(f"at least {schema['minLength']} characters")
        if "maxLength" in schema:
            rules.append(f"at most {schema['maxLength']} characters")
        return rules


def _type(schema: Schema) -> str:
    kind = schema.get("type", "")
    if kind == "array":
        return f"[]{_type(schema.get('items') or {})}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map[string]{_type(schema['additionalProperties'])}"
    if "format" in schema:
        return f"{kind} ({schema['format']})"
    return str(kind)


def _children(schema: Schema) -> Schema:
    if schema.get("type") == "array":
        return _children(schema.get("items") or {})
    return schema.get("properties") or {}


def fields(schema: Schema, prefix: str = "") -> Iterator[Field]:
    """Every declared field under `schema`, depth first, in the schema's order."""
    body = schema.get("items") if schema.get("type") == "array" else schema
    required = set((body or {}).get("required") or [])
    for name, child in _children(schema).items():
        path = f"{prefix}.{name}" if prefix else name
        yield Field(path, child, name in required)
        yield from fields(child, path)


def _version() -> tuple[Schema, Schema]:
    crd = modeladapter_crd()
    version: Schema = crd["spec"]["versions"][0]
    return crd, version


def root_schema() -> Schema:
    schema: Schema = _version()[1]["schema"]["openAPIV3Schema"]
    return schema


def _words(text: str) -> str:
    return " ".join(text.split())


def render_reference() -> str:
    crd, version = _version()
    spec, names = crd["spec"], crd["spec"]["names"]
    root = root_schema()
    lines = [
        "# ModelAdapter API reference",
        "",
        "<!-- Generated from deploy/crds/modeladapter-crd.yaml by `python -m docs.apireference > "
        "docs/api-reference.md`; edit the CRD, not this file. -->",
        "",
        _words(root.get("description", "")),
        "",
        f"* API version: `{spec['group']}/{version['name']}`, kind `{names['kind']}` ({spec['scope']}), "
        f"list kind `{names['listKind']}`",
        f"* names: `{names['plural']}`, `{names['singular']}`, "
        + ", ".join(f"`{short}`" for short in names.get("shortNames") or [])
        + f" (`kubectl get {names['plural']}`, `kubectl explain {names['singular']}.spec`)",
        "* columns of `kubectl get`: "
        + ", ".join(f"{c['name']} (`{c['jsonPath']}`)" for c in version.get("additionalPrinterColumns") or []),
        "",
        "Each field: its type, then its rules; the API server refuses an object that breaks one of them "
        "(`kubectl apply` says which field). The operator checks more (`modeladapter.operator.api.spec`): a spec "
        "it cannot act on makes condition `Ready` False, reason `InvalidSpec`, naming the field.",
    ]
    for section in ("metadata", "spec", "status"):
        schema = root["properties"][section]
        lines += ["", f"## {section}", ""]
        if "description" in schema:
            lines += [_words(schema["description"]), ""]
        for field in fields(schema, section):
            rules = "; ".join(field.rules)
            lines.append(f"* **`{field.path}`** ({field.type}{'; ' + rules if rules else ''})")
            if "description" in field.schema:
                lines.append(f"  {_words(field.schema['description'])}")
    return "\n".join(lines) + "\n"
