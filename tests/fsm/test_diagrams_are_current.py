"""`docs/state-machines.md` is rendered from the transition tables; it must not drift from them."""

from __future__ import annotations

from pathlib import Path

from modeladapter.fsm.diagram import render_document, render_mermaid
from modeladapter.fsm.table import PHASE_TABLE, PLACEMENT_TABLE

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "state-machines.md"


def test_the_documented_diagrams_match_the_tables() -> None:
    assert DOCUMENT.read_text() == render_document(), (
        "docs/state-machines.md is out of date: run "
        "`python -m modeladapter.fsm.diagram > docs/state-machines.md` and commit the result"
    )


def test_every_edge_appears_as_one_arrow() -> None:
    for table in (PHASE_TABLE, PLACEMENT_TABLE):
        arrows = [line for line in render_mermaid(table).splitlines() if "-->" in line]
        assert len(arrows) == len(table)


def test_guards_and_recorded_facts_are_labelled() -> None:
    rendered = render_mermaid(PLACEMENT_TABLE)
    assert "Loading --> Backoff: load_failed [retriable] / load_failed_will_retry" in rendered
    assert "[*] --> Assigned: assign / pod_selected" in rendered
