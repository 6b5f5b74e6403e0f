"""The event catalogue, `docs/events.md`, rendered from the code so that it cannot drift from it.

`python -m docs.catalogue > docs/events.md` regenerates it; a test fails when the file and
this rendering disagree. Everything in it is read off the code:

* the event types, their fields, types, defaults and descriptions: the pydantic models of
  `modeladapter.fsm.events` (attribute docstrings are their field descriptions);
* which table edges record an event: each placement edge's emitter is run on a probe decision;
* which reconcile steps record it or fire those edges: the calls in `operator/reconciling.py`, read with `ast`;
* what folding does with it: the `match` case of `modeladapter.fsm.state` that handles it, and what it
  changed in an example;
* the examples: one adapter's story, decided by the real state machines (`decide`) with scripted facts, told
  by `modeladapter.operator.audit.narration`, and the Kubernetes Events `modeladapter.operator.kube.events` makes of it.

It lives in `operator/` because the narration and the Kubernetes Events do; `fsm` stays pure.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import importlib
import json
import textwrap
import types
import typing
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from pydantic import AwareDatetime, BaseModel
from pydantic.fields import FieldInfo

from modeladapter.adapters.outcomes import EngineUnavailable
from modeladapter.adapters.selection import EngineKind, EngineTarget
from modeladapter.fsm import events as ev
from modeladapter.fsm import state as state_module
from modeladapter.fsm.backoff import DEFAULT_BACKOFF
from modeladapter.fsm.facts import Decision, Facts
from modeladapter.fsm.machine import decide
from modeladapter.fsm.phases import NEW, Phase, PhaseTrigger, PlacementState, PlacementTrigger, Trigger
from modeladapter.fsm.state import AdapterState, Placement, fold
from modeladapter.fsm.table import PHASE_TABLE, PLACEMENT_TABLE, Edge
from modeladapter.operator.audit.narration import line
from modeladapter.operator.kube.events import Notice, events_for
from modeladapter.operator.api.status import ready_message, scheduled_message
from modeladapter.store.schema import events as events_table

RECONCILER_SOURCE: Final = Path(__file__).resolve().with_name("reconciling.py")
DECISIONS: Final = frozenset({"PhaseChanged", "PlacementChanged"})
"""The types the machines record for every edge they take; every other type is a fact."""

# The example adapter: AIBrix's seed sample, `samples/adapter/adapter.yaml`, with `replicas: 1`.
NAMESPACE: Final = "default"
NAME: Final = "qwen-code-lora"
STREAM_ID: Final = "5e1c0c7e-2b8f-4d8a-9a57-3f0e8c1d2a4b"
ARTIFACT: Final = "huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora"
SELECTOR: Final = "adapter.model.aibrix.ai/enabled=true,model.aibrix.ai/name=qwen-coder-1-5b-instruct"
PODS: Final = ("qwen-coder-1-5b-instruct-0", "qwen-coder-1-5b-instruct-1")
POD_IPS: Final = {PODS[0]: "10.0.0.11", PODS[1]: "10.0.0.12"}
STARTED: Final = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
FIRST_POSITION: Final = 1201
"""Positions are global: other adapters' events came before this one's."""

# Which example to show when a type occurs more than once: the most telling one.
PREFERRED_EXAMPLE: Final[dict[str, Callable[[ev.AdapterEvent], bool]]] = {
    "PhaseChanged": lambda p: isinstance(p, ev.PhaseChanged) and p.trigger == PhaseTrigger.PODS_SELECTED,
    "PlacementChanged": lambda p: isinstance(p, ev.PlacementChanged) and p.trigger == PlacementTrigger.LOAD_FAILED,
}


# --- the example story ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Story:
    """One adapter's stream, built the way a reconcile builds it: facts recorded, decisions from `decide`."""

    events: list[ev.RecordedEvent] = field(default_factory=list)
    state: AdapterState = field(default_factory=AdapterState)
    now: datetime = STARTED
    generation: int = 1
    reconcile: int = 0

    def next_reconcile(self, after: timedelta) -> None:
        self.now += after
        self.reconcile += 1

    def record(self, *payloads: ev.AdapterEvent) -> None:
        reconcile_id = uuid.uuid5(uuid.NAMESPACE_URL, f"reconcile/{self.reconcile}").hex[:16]
        for payload in payloads:
            version = len(self.events) + 1
            recorded = ev.RecordedEvent(
                stream_id=STREAM_ID,
                namespace=NAMESPACE,
                name=NAME,
                version=version,
                position=FIRST_POSITION + version - 1,
                event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"event/{version}"),
                recorded_at=self.now,
                reconcile_id=reconcile_id,
                observed_generation=self.generation,
                payload=payload,
            )
            self.events.append(recorded)
            self.state = fold([recorded], self.state)

    def decide(self, trigger: Trigger, **facts: Any) -> None:
        self.record(*decide(self.state, trigger, Facts(now=self.now, backoff=DEFAULT_BACKOFF, **facts)))


def _refused(pod: str) -> str:
    target = EngineTarget(EngineKind.VLLM, POD_IPS[pod], 8000)
    return str(EngineUnavailable(f"load: {target} is unreachable (ConnectError: [Errno 111] Connection refused)"))


def example_story() -> list[ev.RecordedEvent]:
    """Created, five refused loads on one pod, a switch, Running, an eviction repaired, a lost pod, an invalid
    generation, deletion. Every decision is the state machines' own; only the observations are scripted."""
    story = _Story()
    first, second = PODS
    P, U = PhaseTrigger, PlacementTrigger
    # Reconcile 1: a new adapter; the first pod is chosen and the load is written ahead of the call.
    story.record(
        ev.SpecObserved(generation=1, artifact_url=ARTIFACT, replicas=1, scheduler_name="default", pod_selector=SELECTOR)
    )
    story.decide(P.CREATED)
    story.decide(U.ASSIGN, pod=first, policy="least-adapters", reason="least-adapters: 0 adapters on the pod")
    story.decide(U.START_LOAD, pod=first, artifact_url=ARTIFACT)
    story.decide(P.PODS_SELECTED, reason="Scheduled", message=scheduled_message(NAMESPACE, NAME, (first,)))
    story.decide(P.LOAD_STARTED, reason="Loading", message=f"loading on 1 pods: {first} (attempt 1)")
    story.decide(U.LOAD_FAILED, pod=first, error=_refused(first), retriable=True)
    # The first pod refuses every attempt: retried after 5, 10, 20 and 40 s, exhausted 80 s after the fifth.
    for wait in (5, 10, 20, 40, 80):
        story.next_reconcile(timedelta(seconds=wait))
        story.decide(U.RETRY_DUE, pod=first, artifact_url=ARTIFACT)
        placement = story.state.placement(first)
        if placement is not None and placement.state is PlacementState.LOADING:
            story.decide(U.LOAD_FAILED, pod=first, error=_refused(first), retriable=True)
    # The same reconcile switches to the second pod, which loads it; the Service lists it: Running.
    exhausted = story.state.placement(first)
    assert exhausted is not None and exhausted.state is PlacementState.EXHAUSTED
    switch = f"MaxRetriesExceeded: {exhausted.last_error}"
    story.decide(U.ASSIGN, pod=second, policy="least-adapters", replaces=first, reason=switch)
    story.decide(U.START_LOAD, pod=second, artifact_url=ARTIFACT)
    story.decide(P.PODS_SELECTED, reason="Scheduled", message=scheduled_message(NAMESPACE, NAME, (second,)))
    story.decide(P.LOAD_STARTED, reason="Loading", message=f"loading on 1 pods: {second} (attempt 1)")
    story.decide(U.LOAD_SUCCEEDED, pod=second, duration_ms=1843.2)
    story.decide(P.LOAD_VERIFIED, reason="Loaded", message=f"verified loaded on 1 pods: [{second}]")
    story.record(ev.ServiceBound(service=NAME, endpoints=(POD_IPS[second],)))
    story.decide(P.SERVICE_BOUND, reason="ModelAdapterAvailable", message=ready_message(NAMESPACE, NAME))
    # The exhausted pod rested for the cool-down and is no longer needed: the adapter is taken off it.
    story.next_reconcile(DEFAULT_BACKOFF.reconsider_at(story.now) - story.now)
    story.decide(U.UNLOAD, pod=first, unload_deadline=story.now + timedelta(seconds=60))
    story.decide(U.UNLOAD_FAILED, pod=first, error=_refused(first).replace("load:", "unload:"))
    story.next_reconcile(timedelta(seconds=5))
    story.decide(U.UNLOAD_SUCCEEDED, pod=first)
    # The engine forgot the adapter (it restarted); verification notices and the pod gets it back.
    story.next_reconcile(timedelta(seconds=30))
    missing = "not listed by the engine's /v1/models (evicted, or the engine restarted)"
    story.decide(U.ADAPTER_MISSING, pod=second, reason=missing)
    story.decide(U.RELOAD, pod=second, artifact_url=ARTIFACT)
    story.decide(P.LOAD_STARTED, reason="Loading", message=f"loading on 1 pods: {second} (attempt 1)")
    story.decide(U.LOAD_SUCCEEDED, pod=second, duration_ms=912.7)
    story.decide(P.LOAD_VERIFIED, reason="Loaded", message=f"verified loaded on 1 pods: [{second}]")
    story.decide(P.SERVICE_BOUND, reason="ModelAdapterAvailable", message=ready_message(NAMESPACE, NAME))
    # The pod stops being Ready: it leaves the instances and the EndpointSlice at once.
    story.next_reconcile(timedelta(minutes=7))
    story.decide(U.POD_LOST, pod=second, reason=f"pod {second} is not Ready")
    story.record(ev.ServiceBound(service=NAME, endpoints=()))
    no_pods = f"no healthy pod in namespace {NAMESPACE} matches {SELECTOR}"
    story.decide(P.PODS_UNAVAILABLE, reason="NoCandidatePods", message=no_pods)
    # A new generation with an artifact URL the operator cannot use.
    story.next_reconcile(timedelta(minutes=2))
    story.generation = 2
    bad_url = "ftp://example.com/lora"
    story.record(
        ev.SpecObserved(generation=2, artifact_url=bad_url, replicas=1, scheduler_name="default", pod_selector=""),
        ev.SpecRejected(
            generation=2,
            field="spec.artifactURL",
            rule="unsupported scheme; use one of huggingface://, hf://, s3://, gcs://, gs://, tos://, /absolute/path",
            message="spec.artifactURL: unsupported scheme; use one of huggingface://, hf://, s3://, gcs://, gs://, "
            f"tos://, /absolute/path (got {bad_url})",
        ),
    )
    story.decide(P.SPEC_INVALID, reason="InvalidSpec", message=story.state.rejection.message if story.state.rejection else "")
    # Deleted: the pod is gone by now, which counts as unloaded; the stream ends, then the finalizer goes.
    story.next_reconcile(timedelta(minutes=1))
    story.decide(P.DELETION_REQUESTED, reason="Terminating", message="unloading from every pod")
    story.decide(U.POD_GONE, pod=second, reason="pod deleted")
    story.record(ev.Finalized())
    return story.events


# --- what the code says about each type ---------------------------------------------------------------------------


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
    return Decision(adapter=AdapterState(placements=(placement,) if placement else ()), facts=facts, placement=placement)


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


@dataclass(slots=True)
class ReconcileCalls:
    """What each method of `operator/reconciling.py` records directly and which triggers it fires."""

    records: dict[str, set[str]] = field(default_factory=dict)
    """Event type -> methods that record it with `step.record(...)`."""
    fires: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    """(machine, trigger) -> methods that fire it with `step.decide(...)`; both machines have a `retry_due`."""

    def firing(self, trigger: Trigger) -> set[str]:
        return self.fires.get(_key(trigger), set())


def _key(trigger: Trigger) -> tuple[str, str]:
    return ("phase" if isinstance(trigger, PhaseTrigger) else "placement", trigger.value)


def reconcile_calls(source: str | None = None) -> ReconcileCalls:
    """Read `step.record(Event(...))` and `step.decide(TRIGGER, ...)` calls out of the reconciler's source.

    A trigger held in a variable is resolved through the function it was assigned from: its return
    annotation says which machine's triggers it returns (the phase walk's `next_trigger`).
    """
    tree = ast.parse(source if source is not None else RECONCILER_SOURCE.read_text())
    imported = {
        alias.asname or alias.name: node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    calls = ReconcileCalls()
    for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)):
        for call in (n for n in ast.walk(function) if isinstance(n, ast.Call)):
            if not isinstance(call.func, ast.Attribute) or not call.args:
                continue
            first = call.args[0]
            if call.func.attr == "record":
                for argument in call.args:
                    if isinstance(argument, ast.Call) and isinstance(argument.func, ast.Name):
                        calls.records.setdefault(argument.func.id, set()).add(function.name)
            elif call.func.attr == "decide":
                for trigger in _triggers_of(first, function, imported):
                    calls.fires.setdefault(_key(trigger), set()).add(function.name)
    return calls


def _triggers_of(node: ast.expr, function: ast.AST, imported: dict[str, str]) -> list[Trigger]:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        machines: dict[str, type[PhaseTrigger] | type[PlacementTrigger]] = {
            "U": PlacementTrigger,
            "PlacementTrigger": PlacementTrigger,
            "PhaseTrigger": PhaseTrigger,
        }
        machine = machines.get(node.value.id)
        return [machine[node.attr]] if machine is not None else []
    if isinstance(node, ast.Name):
        for assignment in (n for n in ast.walk(function) if isinstance(n, ast.Assign)):
            targets = [t.id for t in assignment.targets if isinstance(t, ast.Name)]
            value = assignment.value
            if node.id in targets and isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
                module = imported.get(value.func.id)
                if module is None:
                    continue
                returned = typing.get_type_hints(getattr(importlib.import_module(module), value.func.id))["return"]
                found: list[Trigger] = []
                if PhaseTrigger in typing.get_args(returned) or returned is PhaseTrigger:
                    found += list(PhaseTrigger)
                if PlacementTrigger in typing.get_args(returned) or returned is PlacementTrigger:
                    found += list(PlacementTrigger)
                return found
    return []


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
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in methods
        and n.func.attr != "_existing"
    }
    for helper in sorted(helpers):
        node = methods[helper]
        assert node.end_lineno is not None
        parts.append(textwrap.dedent("\n".join(lines[node.lineno - 1 : node.end_lineno])))
    return "\n\n".join(parts)


# --- rendering ------------------------------------------------------------------------------------------------------


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
        inner = f"{render_type(args[0])}, ..." if len(args) == 2 and args[1] is Ellipsis else ", ".join(map(render_type, args))
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


def _methods(names: set[str]) -> str:
    return ", ".join(f"`{name}`" for name in sorted(names))


def _recorded_by(kind: str, recordings: dict[str, list[Recording]], calls: ReconcileCalls) -> list[str]:
    lines: list[str] = []
    if kind == "PhaseChanged":
        lines.append(f"- every edge of the phase table ({len(PHASE_TABLE)} edges, [state-machines.md](state-machines.md#phase-statusphase))")
        by_method: dict[str, list[str]] = {}
        for phase_trigger in PhaseTrigger:
            for method in calls.firing(phase_trigger):
                by_method.setdefault(method, []).append(phase_trigger.value)
        for method, triggers in sorted(by_method.items()):
            every = len(triggers) == len(PhaseTrigger)
            which = "any phase trigger (computed at run time)" if every else ", ".join(f"`{t}`" for t in sorted(triggers))
            lines.append(f"- reconcile step `{method}`: {which}")
    elif kind == "PlacementChanged":
        lines.append(
            f"- every edge of the placement table ({len(PLACEMENT_TABLE)} edges, "
            "[state-machines.md](state-machines.md#placement-the-adapter-on-one-pod))"
        )
        for placement_trigger in PlacementTrigger:
            if calls.firing(placement_trigger):
                lines.append(f"- `{placement_trigger.value}`, fired by {_methods(calls.firing(placement_trigger))}")
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
        fired = calls.firing(members[0].edge.trigger)
        by = f"; fired by {_methods(fired)}" if fired else ""
        shown_guard = f" [{guard}]" if guard else ""
        lines.append(f"- `{trigger}`{shown_guard}: {sources} → {dest}, emitter `{emitter}`{condition}{by}")
    if kind in calls.records:
        lines.append(f"- recorded directly by the reconcile step(s) {_methods(calls.records[kind])}")
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


def render_event(model: type[BaseModel], story: list[ev.RecordedEvent], recordings: dict[str, list[Recording]], calls: ReconcileCalls) -> str:
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
    out += ["Recorded by (placement edges as `trigger [guard]: sources → destination`):", "", *_recorded_by(kind, recordings, calls), ""]
    if kind not in DECISIONS and kind not in calls.records and kind not in recordings:
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
    calls = reconcile_calls()
    envelope = story[_example("LoadFailed", story)]
    sections = "\n".join(render_event(model, story, recordings, calls) for model in event_models())
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

"Reconcile steps" are the methods of `Reconciler` (`operator/reconciling.py`) that record an event or fire
a trigger, read from its source; the numbered steps they belong to are in
[architecture.md](architecture.md#one-reconcile).

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


if __name__ == "__main__":
    print(render_document(), end="")
