"""`docs/events.md` is rendered from the code (`python -m docs.catalogue`); it must not drift from it."""

from __future__ import annotations

from pathlib import Path

from docs.catalogue import (
    edges_recording,
    event_models,
    example_story,
    render_document,
    render_type,
    rule_index,
    type_name,
)
from modeladapter.fsm import events as ev
from modeladapter.fsm.phases import PhaseTrigger, PlacementTrigger

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_the_catalogue_matches_the_code() -> None:
    assert DOCUMENT.read_text() == render_document(), (
        "docs/events.md is out of date: run `python -m docs.catalogue > docs/events.md` and commit the result"
    )


def test_every_event_type_has_a_section() -> None:
    text = DOCUMENT.read_text()
    assert {type_name(model) for model in event_models()} == ev.EVENT_TYPES
    for kind in ev.EVENT_TYPES:
        assert f"\n### {kind}\n" in text


def test_every_field_is_described_in_the_code() -> None:
    for model in [*event_models(), ev.NewEvent, ev.RecordedEvent]:
        for name, info in model.model_fields.items():
            if name not in ("type", "schema_version"):
                assert info.description, f"{model.__name__}.{name} has no docstring (its description in docs/events.md)"


def test_the_example_story_holds_every_type_and_folds() -> None:
    story = example_story()
    assert {event.payload.type for event in story} == ev.EVENT_TYPES
    assert [event.version for event in story] == list(range(1, len(story) + 1))


def test_the_edges_that_record_facts_are_found_by_running_their_emitters() -> None:
    recordings = edges_recording()
    switch = [r for r in recordings["PodSwitched"] if r.edge.trigger is PlacementTrigger.ASSIGN]
    assert switch and all(r.only_when_replacing for r in switch)
    assert not any(r.only_when_replacing for r in recordings["PodSelected"])
    assert {r.edge.emit.__name__ for r in recordings["LoadFailed"] if r.edge.emit} == {
        "load_failed_will_retry",
        "load_failed_for_good",
    }


def test_the_rules_that_fire_a_trigger_come_from_their_declarations_and_tell_the_two_retry_dues_apart() -> None:
    rules = rule_index()
    assert rules.firing(PlacementTrigger.RETRY_DUE) == ["retry_when_due"]
    assert rules.firing(PhaseTrigger.RETRY_DUE) == ["walk_phase"]
    assert rules.firing(PhaseTrigger.CREATED) == ["admit", "walk_phase"]
    assert rules.records["Finalized"] == ["finalize"]
    fired = {trigger for trigger in [*PhaseTrigger, *PlacementTrigger] if rules.firing(trigger)}
    assert fired == {*PhaseTrigger, *PlacementTrigger}, "every trigger of the tables is fired by some rule"


def test_types_render_as_a_reader_writes_them() -> None:
    fields = ev.PlacementExhausted.model_fields
    assert render_type(fields["cause"].annotation) == '"max-retries" | "non-retriable"'
    assert render_type(ev.LoadFailed.model_fields["retry_at"].annotation) == "datetime | None"
    assert render_type(ev.ServiceBound.model_fields["endpoints"].annotation) == "tuple[str, ...]"
