"""Label and field selectors, parsed and matched as `k8s.io/apimachinery/pkg/labels` and `fields` do.

A label selector is a comma-separated list of requirements: `key`, `!key`, `key=v`, `key==v`, `key!=v`,
`key in (a,b)`, `key notin (a,b)`, `key>1`, `key<1`. `!=` and `notin` also match objects without the key.
A field selector supports `=`, `==` and `!=` on the field labels each resource declares (every resource has
`metadata.name` and `metadata.namespace`). A selector that does not parse is a 400 BadRequest, as on a real
server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from modeladapter.sandbox.apiserver.errors import bad_request

_KEY = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?")
_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # exists, !, =, !=, in, notin, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.operator:
            case "exists":
                return present
            case "!":
                return not present
            case "=" | "in":
                return present and value in self.values
            case "!=" | "notin":
                return not present or value not in self.values
            case "gt" | "lt":
                if not present or value is None:
                    return False
                try:
                    number = int(value)
                except ValueError:
                    return False
                bound = int(self.values[0])
                return number > bound if self.operator == "gt" else number < bound
        return False


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        return all(r.matches(labels or {}) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside a `( ... )` value set."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _check_key(key: str, whole: str) -> None:
    if not key or not _KEY.fullmatch(key):
        raise bad_request(f'unable to parse requirement: invalid label key "{key}" in selector "{whole}"')


def _check_value(value: str, whole: str) -> None:
    if len(value) > 63 or not _VALUE.fullmatch(value):
        raise bad_request(f'unable to parse requirement: invalid label value: "{value}" in selector "{whole}"')


_SET = re.compile(r"^\s*(?P<key>\S+?)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)\s*$")
_BINARY = re.compile(r"^\s*(?P<key>[^=!<>\s]+)\s*(?P<op>==|=|!=|>|<)\s*(?P<value>[^=!<>\s]*)\s*$")


def parse_label_selector(text: str | None) -> LabelSelector:
    if not text or not text.strip():
        return LabelSelector()
    requirements = []
    for raw in _split_top_level(text):
        part = raw.strip()
        if not part:
            raise bad_request(f"unable to parse requirement: found '', expected: identifier in selector \"{text}\"")
        if part.startswith("!"):
            key = part[1:].strip()
            _check_key(key, text)
            requirements.append(Requirement(key, "!"))
            continue
        if match := _SET.match(part):
            key = match["key"]
            _check_key(key, text)
            values = tuple(v.strip() for v in match["values"].split(","))
            for value in values:
                _check_value(value, text)
            requirements.append(Requirement(key, match["op"], values))
            continue
        if match := _BINARY.match(part):
            key, op, value = match["key"], match["op"], match["value"]
            _check_key(key, text)
            if op in {">", "<"}:
                if not re.fullmatch(r"-?\d+", value):
                    raise bad_request(
                        "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer"
                    )
                requirements.append(Requirement(key, "gt" if op == ">" else "lt", (value,)))
                continue
            _check_value(value, text)
            requirements.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
            continue
        if _KEY.fullmatch(part):
            requirements.append(Requirement(part, "exists"))
            continue
        raise bad_request(f'unable to parse requirement: invalid label selector "{text}"')
    return LabelSelector(tuple(requirements))


# --- field selectors ------------------------------------------------------------------------------------------

FieldGetter = Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    value: str
    equal: bool


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: dict[str, Any], getters: Mapping[str, FieldGetter]) -> bool:
        return all((getters[r.field](obj) == r.value) == r.equal for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def parse_field_selector(text: str | None, supported: Mapping[str, FieldGetter]) -> FieldSelector:
    if not text or not text.strip():
        return FieldSelector()
    requirements = []
    for raw in text.split(","):
        part = raw.strip()
        match = re.fullmatch(r"(?P<field>[^=!]+?)\s*(?P<op>==|=|!=)\s*(?P<value>.*)", part)
        if match is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        name = match["field"].strip()
        if name not in supported:
            raise bad_request(f"field label not supported: {name}")
        requirements.append(FieldRequirement(name, match["value"].strip(), match["op"] != "!="))
    return FieldSelector(tuple(requirements))


def dig(obj: Mapping[str, Any], path: str) -> str:
    """The string form of a dotted path's value, "" when any step is missing (fields.Set semantics)."""
    current: Any = obj
    for step in path.split("."):
        if not isinstance(current, Mapping) or step not in current:
            return ""
        current = current[step]
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def getters(*paths: str) -> dict[str, FieldGetter]:
    def getter(path: str) -> FieldGetter:
        return lambda obj: dig(obj, path)

    return {path: getter(path) for path in ("metadata.name", "metadata.namespace", *paths)}
