"""The event catalogue, `docs/events.md`, rendered from the code so that it cannot drift from it.

`python -m docs.catalogue > docs/events.md` regenerates it (from the repository root); a test fails when the
file and this rendering disagree. Everything in it is read off the code:

* the event types, their fields, types, defaults and descriptions: the pydantic models of
  `modeladapter.fsm.events` (attribute docstrings are their field descriptions);
* which table edges record an event: each placement edge's emitter is run on a probe decision;
* which planner rules fire those edges or record the event directly: the rules' own declarations
  (`modeladapter.fsm.rules.RULES`);
* what folding does with it: the `match` case of `modeladapter.fsm.state` that handles it, and what it
  changed in an example;
* the examples: one adapter's story (`story`), decided by the real state machines with scripted facts, told by
  the audit commands' narration, and the Kubernetes Events the reconcile makes of it.

It is a documentation tool, not part of the operator: nothing under `operator/` imports it.
"""

from docs.catalogue.document import render_document, render_type
from docs.catalogue.reading import edges_recording, event_models, rule_index, type_name
from docs.catalogue.story import example_story

__all__ = [
    "edges_recording",
    "event_models",
    "example_story",
    "render_document",
    "render_type",
    "rule_index",
    "type_name",
]
