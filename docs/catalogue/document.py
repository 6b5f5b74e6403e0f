"""`docs/events.md`, rendered: the summary, the value types, the envelope and one section per event type."""

from __future__ import annotations

import enum
import json
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Final

from pydantic import AwareDatetime, BaseModel
from pydantic.fields import FieldInfo

from docs.catalogue.reading import (
    DECISIONS,
    Recording,
    RuleIndex,
    edges_recording,
    event_models,
    fold_changes,
    fold_rule,
    rule_index,
    type_name,
)
from docs.catalogue.story import NAME, NAMESPACE, example_story
from modeladapter.fsm import events as ev
from modeladapter.fsm.phases import NEW, Phase, PhaseTrigger, PlacementState, PlacementTrigger
from modeladapter.fsm.rules import RULES
from modeladapter.fsm.state import fold
from modeladapter.fsm.table import PHASE_TABLE, PLACEMENT_TABLE
from modeladapter.operator.audit.narration import line
from modeladapter.operator.kube.events import Notice
from modeladapter.operator.reconcile.notices import events_for
from modeladapter.store.schema import events as events_table

PREFERRED_EXAMPLE: Final[dict[str, Callable[[ev.AdapterEvent], bool]]] = {
    "PhaseChanged": lambda p: isinstance(p, ev.PhaseChanged) and p.trigger == PhaseTrigger.PODS_SELECTED,
    "PlacementChanged": lambda p: isinstance(p, ev.PlacementChanged) and p.trigger == PlacementTrigger.LOAD_FAILED,
}


def render_type(annotation: Any) -> str:
    """A field's annotation as a reader would write it: `int | None`, `"a" | "b"`, `tuple[str, ...]`."""
    if annotation is type(None):
        return "None"
    if annotation is AwareDatetime:
        return "datetime"
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(json.dumps(value) for value in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(render_type(arg) for arg in typing.get_args(annotation))
    if origin is tuple:
        args = typing.get_args(annotation)
        inner = (
            f"{render_type(args[0])}, ..."
            if len(args) == 2 and args[1] is Ellipsis
            else ", ".join(map(render_type, args))
        )
        return f"tuple[{inner}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        return "generated"
    return "`None`" if info.default is None else f"`{json.dumps(info.default)}`"


def field_table(model: type[BaseModel], *, skip: Sequence[str] = ("type", "schema_version")) -> list[str]:
    rows = ["| field | type | default | description |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        shown = "an event (the union below)" if name == "payload" else f"`{_cell(render_type(info.annotation))}`"
        rows.append(f"| `{name}` | {shown} | {_default(info)} | {_cell(info.description or '')} |")
    return rows


def _first_sentence(text: str | None) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat.split(". ")[0].rstrip(".") + "."


def _rules(names: Sequence[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)


def _recorded_by(kind: str, recordings: dict[str, list[Recording]], rules: RuleIndex) -> list[str]:
    lines: list[str] = []
    if kind == "PhaseChanged":
        lines.append(
            f"- every edge of the phase table ({len(PHASE_TABLE)} edges, [state-machines.md](state-machines.md#phase-statusphase))"
        )
        by_rule: dict[str, list[str]] = {}
        for phase_trigger in PhaseTrigger:
            for rule in rules.firing(phase_trigger):
                by_rule.setdefault(rule, []).append(phase_trigger.value)
        for rule, triggers in sorted(by_rule.items()):
            every = len(triggers) == len(PhaseTrigger)
            which = (
                "any phase trigger, along the path derived from the phase table"
                if every
                else ", ".join(f"`{t}`" for t in sorted(triggers))
            )
            lines.append(f"- planner rule `{rule}`: {which}")
    elif kind == "PlacementChanged":
        lines.append(
            f"- every edge of the placement table ({len(PLACEMENT_TABLE)} edges, "
            "[state-machines.md](state-machines.md#placement-the-adapter-on-one-pod))"
        )
        for placement_trigger in PlacementTrigger:
            if rules.firing(placement_trigger):
                lines.append(
                    f"- `{placement_trigger.value}`, fired by the planner rules {_rules(rules.firing(placement_trigger))}"
                )
    # Edges that differ only in their source are one line.
    groups: dict[tuple[str, str, str, str, bool], list[Recording]] = {}
    for recording in recordings.get(kind, []):
        edge = recording.edge
        key = (
            edge.trigger.value,
            edge.guard.__name__ if edge.guard is not None else "",
            str(edge.dest),
            edge.emit.__name__ if edge.emit is not None else "",
            recording.only_when_replacing,
        )
        groups.setdefault(key, []).append(recording)
    for (trigger, guard, dest, emitter, replacing), members in groups.items():
        sources = ", ".join("New" if r.edge.source == NEW else str(r.edge.source) for r in members)
        condition = " (only when the assignment replaces another pod)" if replacing else ""
        fired = rules.firing(members[0].edge.trigger)
        by = f"; fired by {_rules(fired)}" if fired else ""
        shown_guard = f" [{guard}]" if guard else ""
        lines.append(f"- `{trigger}`{shown_guard}: {sources} → {dest}, emitter `{emitter}`{condition}{by}")
    if kind in rules.records:
        lines.append(f"- recorded directly by the planner rule(s) {_rules(rules.records[kind])}")
    return lines


def _any_example(payload: ev.AdapterEvent) -> bool:
    return True


def _example(kind: str, story: list[ev.RecordedEvent]) -> int:
    preferred = PREFERRED_EXAMPLE.get(kind, _any_example)
    matching = [i for i, e in enumerate(story) if e.payload.type == kind and preferred(e.payload)]
    if not matching:
        raise AssertionError(f"the example story has no {kind}")
    # The first occurrence whose folding shows something, if any does.
    return next((i for i in matching if fold_changes(fold(story[:i]), fold(story[: i + 1]))), matching[0])


def _notices(index: int, story: list[ev.RecordedEvent]) -> list[Notice]:
    """The Kubernetes Events the recorder makes of the story's event at `index`."""
    return events_for([story[index].payload], fold(story[: index + 1]), namespace=NAMESPACE, name=NAME)


def render_event(
    model: type[BaseModel], story: list[ev.RecordedEvent], recordings: dict[str, list[Recording]], rules: RuleIndex
) -> str:
    kind = type_name(model)
    index = _example(kind, story)
    example = story[index]
    version = model.model_fields["schema_version"].default
    changes = fold_changes(fold(story[:index]), fold(story[: index + 1]))
    notices = [f"`{n.type}` `{n.reason}`: {n.message}" for n in _notices(index, story)]
    out = [
        f"### {kind}",
        "",
        f"**{'Decision' if kind in DECISIONS else 'Fact'}**, `schema_version` {version}. {' '.join((model.__doc__ or '').split())}",
        "",
    ]
    if len(model.model_fields) > 2:
        out += [*field_table(model), ""]
    else:
        out += ["No fields besides `type` and `schema_version`.", ""]
    out += [
        "Recorded by (placement edges as `trigger [guard]: sources → destination`):",
        "",
        *_recorded_by(kind, recordings, rules),
        "",
    ]
    if kind not in DECISIONS and kind not in rules.records and kind not in recordings:
        raise AssertionError(f"nothing records {kind}")
    out += ["Folding it (`fsm/state.py`):", "", "```python", fold_rule(kind), "```", ""]
    if changes:
        out += ["In the example below it changed:", "", *(f"- {c}" for c in changes), ""]
    else:
        out += ["In the example below it changed nothing but the stream's `version` and `position`.", ""]
    out += [
        "Example, narrated (`modeladapter.operator.audit.narration.line`) and as its JSON payload:",
        "",
        "```text",
        line(example),
        "```",
        "",
        "```json",
        json.dumps(example.payload.model_dump(mode="json"), ensure_ascii=False),
        "```",
        "",
    ]
    if notices:
        out += ["Kubernetes Event on the ModelAdapter (`kubectl describe`): " + "; ".join(notices), ""]
    return "\n".join(out)


def _summary(story: list[ev.RecordedEvent]) -> list[str]:
    rows = ["| type | kind | v | what it records | Kubernetes Events it gave in the story |", "|---|---|---|---|---|"]
    for model in event_models():
        kind = type_name(model)
        given = {n.reason for i, e in enumerate(story) if e.payload.type == kind for n in _notices(i, story)}
        reasons = ", ".join(f"`{reason}`" for reason in sorted(given))
        rows.append(
            f"| [`{kind}`](#{kind.lower()}) | {'decision' if kind in DECISIONS else 'fact'} | "
            f"{model.model_fields['schema_version'].default} | {_cell(_first_sentence(model.__doc__))} | {reasons} |"
        )
    return rows


def _columns() -> list[str]:
    rows = ["| column | type | null | holds |", "|---|---|---|---|"]
    meaning = {
        "stream_id": "`RecordedEvent.stream_id` (primary key with `version`)",
        "version": "`RecordedEvent.version`",
        "position": "`RecordedEvent.position` (unique)",
        "event_id": "`RecordedEvent.event_id` (unique)",
        "type": "the payload's `type`",
        "schema_version": "the payload's `schema_version`",
        "recorded_at": "`RecordedEvent.recorded_at` (UTC)",
        "reconcile_id": "`RecordedEvent.reconcile_id`",
        "observed_generation": "`RecordedEvent.observed_generation`",
        "payload": "the payload's other fields, as a JSON object (JSONB on PostgreSQL)",
    }
    for column in events_table.columns:
        rows.append(
            f"| `{column.name}` | {column.type.__class__.__name__} | {'yes' if column.nullable else 'no'} | "
            f"{meaning.get(column.name, '')} |"
        )
    return rows


def _enum_values(kind: type[enum.Enum]) -> str:
    return ", ".join(f"`{member.value}`" for member in kind)


def render_document() -> str:
    story = example_story()
    recordings = edges_recording()
    rules = rule_index()
    envelope = story[_example("LoadFailed", story)]
    sections = "\n".join(render_event(model, story, recordings, rules) for model in event_models())
    return f"""# Event catalogue

Generated from the code by `python -m docs.catalogue > docs/events.md`;
`tests/operator/test_event_catalogue_is_current.py` fails when this file and the code disagree. Field
descriptions are the attribute docstrings of `fsm/events.py`.

Every ModelAdapter has one stream of events in the log, keyed by its `metadata.uid`. **Facts** record what
the operator observed or did (a load failed, a pod was lost, the Service was bound). **Decisions** record
what the state machines concluded (`PhaseChanged`, `PlacementChanged`); each table edge records exactly one
decision, after the facts its emitter records. The state of an adapter is `fold(events)`
(`fsm/state.py`): phases and placement states come from decisions, everything else from facts. The edges
themselves are drawn in [state-machines.md](state-machines.md).

"Planner rules" are the rules of the pure planner that fire a trigger or record an event, as they declare
themselves in `fsm/rules.py` (`RULES`, in the order a reconcile applies them; a rule that fires a trigger it
does not declare raises). What each rule does:

{chr(10).join(f"- `{rule.name}`: {rule.does}" for rule in RULES)}

How a reconcile runs them is in [architecture.md](architecture.md#one-reconcile).

The examples below come from one story, built the way the reconciler builds a stream: the observations are
scripted, every decision is the state machines' own (`decide`). The adapter is AIBrix's seed sample with
`replicas: 1`: its first pod refuses five loads (backoff 5, 10, 20, 40, 80 s), the adapter switches to the
second pod and reaches Running; the exhausted pod is unloaded after its cool-down; the engine forgets the
adapter and gets it back; the pod stops being Ready; a new generation is invalid; the adapter is deleted.

## Summary

{chr(10).join(_summary(story))}

## Value types

| type | in JSON |
|---|---|
| `datetime` | RFC 3339 string with a zone; the operator writes UTC |
| `tuple[str, ...]` | array of strings |
| `Phase` | string: {_enum_values(Phase)} |
| `PlacementState` | string: {_enum_values(PlacementState)} |

`extra="forbid"`: a payload with a field its model does not declare is refused, on write and on read.

## The envelope

Around every payload, the log keeps the metadata of its recording. `NewEvent` is what a reconcile appends
(`modeladapter.fsm.events.stamp` gives one reconcile's events one time, reconcile id and generation);
`RecordedEvent` is what is read back, with the version and position the store assigned.

`NewEvent`:

{chr(10).join(field_table(ev.NewEvent, skip=()))}

`RecordedEvent`:

{chr(10).join(field_table(ev.RecordedEvent, skip=()))}

In the database (`store/schema.py`, table `{events_table.name}`), the payload's `type` and `schema_version`
are columns of their own and the rest of the payload is a JSON object, so a module can move without
rewriting history. A reader that meets an older `schema_version` upcasts it first (`store/codec.py`). The
stream's namespace and name live in the `adapter_streams` table, once per stream.

{chr(10).join(_columns())}

One recorded event as JSON (`RecordedEvent.model_dump(mode="json")`):

```json
{json.dumps(envelope.model_dump(mode="json"), indent=2, ensure_ascii=False)}
```

## The events

{sections}"""
