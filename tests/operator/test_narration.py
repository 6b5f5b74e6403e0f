"""One line of English per event: what the sandbox prints live and what `events` shows."""

from __future__ import annotations

from docs.catalogue import example_story
from modeladapter.fsm.events import EVENT_TYPES, RecordedEvent
from modeladapter.operator.audit.narration import clock, line, narrate


def _story() -> list[RecordedEvent]:
    return example_story()


def test_every_event_type_is_told_in_one_line() -> None:
    story = _story()
    assert {event.payload.type for event in story} == EVENT_TYPES, "the example story covers every event type"
    for event in story:
        told = narrate(event.payload)
        assert told and "\n" not in told, event.payload.type


def test_a_line_names_the_pod_and_the_attempt_an_on_call_engineer_asks_about_first() -> None:
    for event in _story():
        told = narrate(event.payload)
        for field in ("pod", "from_pod", "to_pod", "error"):
            value = getattr(event.payload, field, None)
            if value:
                assert str(value) in told, f"{event.payload.type}: {field} {value!r} missing from {told!r}"
        attempt = getattr(event.payload, "attempt", None)
        if attempt is not None:
            assert f"attempt {attempt}" in told


def test_a_phase_decision_shows_both_phases_and_the_trigger() -> None:
    decisions = [e for e in _story() if e.payload.type == "PhaseChanged"]
    first = decisions[0].payload
    assert narrate(first).startswith(f"phase - -> {first.to_phase} ({first.trigger}")
    later = decisions[1].payload
    assert f"phase {later.from_phase} -> {later.to_phase} ({later.trigger}" in narrate(later)


def test_the_line_starts_with_the_time_to_the_millisecond_and_the_adapter() -> None:
    event = _story()[0]
    assert line(event) == f"{clock(event.recorded_at)}  {event.namespace}/{event.name}  {narrate(event.payload)}"
    assert line(event, with_adapter=False) == f"{clock(event.recorded_at)}  {narrate(event.payload)}"
    assert len(clock(event.recorded_at)) == len("21:04:05.123")
