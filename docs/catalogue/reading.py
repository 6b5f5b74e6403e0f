"""What the code says about each event type: the models, the table edges whose emitters record it, the
planner rules that fire those edges or record it directly, and how folding handles it.

Triggers are found from the planner's declared rules (`modeladapter.fsm.rules.RULES`), never by reading the
reconciler's source; the fold rule is quoted from `fsm/state.py`.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import textwrap
import typing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from docs.catalogue.story import STARTED
from modeladapter.fsm import events as ev
from modeladapter.fsm import state as state_module
from modeladapter.fsm.facts import Decision, Facts
from modeladapter.fsm.phases import NEW, PhaseTrigger, PlacementState, Trigger
from modeladapter.fsm.rules import RULES, Rule
from modeladapter.fsm.state import AdapterState, Placement
from modeladapter.fsm.table import PLACEMENT_TABLE, Edge

DECISIONS: Final = frozenset({"PhaseChanged", "PlacementChanged"})
"""The types the machines record for every edge they take; every other type is a fact."""


def event_models() -> list[type[BaseModel]]:
    """The event types in the order of the `AdapterEvent` union: facts first, then decisions."""
    union = typing.get_args(ev.AdapterEvent)[0]
    return list(typing.get_args(union))


def type_name(model: type[BaseModel]) -> str:
    default = model.model_fields["type"].default
    assert isinstance(default, str)
    return default


def _probe_decision(edge: Edge, *, replaces: str | None) -> Decision:
    """A decision on `edge` with every fact an emitter may read filled in."""
    now = STARTED
    placement = None
    if edge.source != NEW:
        placement = Placement(pod="p", state=PlacementState(edge.source), since=now, attempts=1)
    facts = Facts(
        now=now,
        pod="p",
        reason="why",
        error="error",
        retriable=True,
        duration_ms=1.0,
        artifact_url="/a",
        policy="least-adapters",
        replaces=replaces,
        unload_deadline=now,
    )
    return Decision(
        adapter=AdapterState(placements=(placement,) if placement else ()), facts=facts, placement=placement
    )


@dataclass(frozen=True, slots=True)
class Recording:
    """A placement edge that records a fact, and whether it does so only when the assignment replaces a pod."""

    edge: Edge
    only_when_replacing: bool


def edges_recording() -> dict[str, list[Recording]]:
    """Event type -> the placement edges whose emitter records it."""
    found: dict[str, list[Recording]] = {}
    for edge in PLACEMENT_TABLE:
        if edge.emit is None:
            continue
        plain = {p.type for p in edge.emit(_probe_decision(edge, replaces=None))}
        replacing = {p.type for p in edge.emit(_probe_decision(edge, replaces="q"))}
        for kind in sorted(plain | replacing):
            found.setdefault(kind, []).append(Recording(edge, kind not in plain))
    return found


def fold_rule(kind: str) -> str:
    """The source of the `match` case of `fsm/state.py` that folds events of type `kind`, with its helpers."""
    source = Path(state_module.__file__).read_text()
    tree = ast.parse(source)
    lines = source.splitlines()
    folder = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "_Folder")
    methods = {n.name: n for n in folder.body if isinstance(n, ast.FunctionDef)}
    match = next(n for n in ast.walk(methods["apply"]) if isinstance(n, ast.Match))
    chosen = None
    for case in match.cases:
        names = {n.id for n in ast.walk(case.pattern) if isinstance(n, ast.Name)}
        if kind in names or (chosen is None and isinstance(case.pattern, ast.MatchAs) and case.pattern.pattern is None):
            chosen = case
            if kind in names:
                break
    assert chosen is not None
    end = chosen.body[-1].end_lineno
    assert end is not None
    parts = [textwrap.dedent("\n".join(lines[chosen.pattern.lineno - 1 : end]))]
    helpers = {
        n.func.attr
        for n in ast.walk(chosen)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr in methods
        and n.func.attr != "_existing"
    }
    for helper in sorted(helpers):
        node = methods[helper]
        assert node.end_lineno is not None
        parts.append(textwrap.dedent("\n".join(lines[node.lineno - 1 : node.end_lineno])))
    return "\n\n".join(parts)


def _value(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%H:%M:%S")
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, BaseModel):
        generation = getattr(value, "generation", None)
        return f"{type(value).__name__} of generation {generation}" if generation is not None else type(value).__name__
    if isinstance(value, tuple):
        return "(" + ", ".join(_value(v) for v in value) + ")"
    return str(value)


def fold_changes(before: AdapterState, after: AdapterState) -> list[str]:
    """What folding one event changed, field by field (`version` and `position` always advance)."""
    changes: list[str] = []
    for item in dataclasses.fields(AdapterState):
        if item.name in ("version", "position", "placements"):
            continue
        old, new = getattr(before, item.name), getattr(after, item.name)
        if old != new:
            changes.append(f"`{item.name}`: `{_value(old)}` → `{_value(new)}`")
    old_placements = {p.pod: p for p in before.placements}
    new_placements = {p.pod: p for p in after.placements}
    for pod in sorted(old_placements.keys() | new_placements.keys()):
        old_p, new_p = old_placements.get(pod), new_placements.get(pod)
        if old_p is None and new_p is not None:
            changes.append(f"placement `{pod}` added in state `{new_p.state.value}`")
        elif new_p is None and old_p is not None:
            changes.append(f"placement `{pod}` removed (it was `{old_p.state.value}`)")
        elif old_p is not None and new_p is not None:
            for item in dataclasses.fields(Placement):
                old, new = getattr(old_p, item.name), getattr(new_p, item.name)
                if old != new:
                    changes.append(f"`placements[{pod}].{item.name}`: `{_value(old)}` → `{_value(new)}`")
    return changes


@dataclass(slots=True)
class RuleIndex:
    """Which planner rules fire each trigger and record each event type, from their declarations."""

    records: dict[str, list[str]] = field(default_factory=dict)
    """Event type -> rules that record it directly."""
    fires: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """(machine, trigger) -> rules that fire it; both machines have a `retry_due`."""

    def firing(self, trigger: Trigger) -> list[str]:
        return self.fires.get(_key(trigger), [])


def _key(trigger: Trigger) -> tuple[str, str]:
    return ("phase" if isinstance(trigger, PhaseTrigger) else "placement", trigger.value)


def rule_index(rules: tuple[Rule, ...] = RULES) -> RuleIndex:
    index = RuleIndex()
    for rule in rules:
        for kind in rule.records:
            index.records.setdefault(kind, []).append(rule.name)
        for trigger in rule.fires:
            index.fires.setdefault(_key(trigger), []).append(rule.name)
    return index
