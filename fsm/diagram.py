"""Mermaid diagrams of the transition tables, for `docs/state-machines.md`.

Rendered from the tables themselves, so the documentation cannot silently drift: a test compares the file
with this rendering. Regenerate with `python -m modeladapter.fsm.diagram > docs/state-machines.md`.
"""

from __future__ import annotations

from modeladapter.fsm.phases import NEW
from modeladapter.fsm.table import PHASE_TABLE, PLACEMENT_TABLE, Edge


def render_mermaid(table: tuple[Edge, ...]) -> str:
    """A `stateDiagram-v2` with one arrow per edge, labelled `trigger [guard] / emitted facts`."""
    lines = ["stateDiagram-v2"]
    for edge in table:
        source = "[*]" if edge.source == NEW else str(edge.source)
        label = edge.trigger.value
        if edge.guard is not None:
            label += f" [{edge.guard.__name__}]"
        if edge.emit is not None:
            label += f" / {edge.emit.__name__}"
        lines.append(f"    {source} --> {edge.dest}: {label}")
    return "\n".join(lines) + "\n"


def render_document() -> str:
    return f"""# State machines

Generated from `fsm/table.py` by `python -m modeladapter.fsm.diagram > docs/state-machines.md`;
`tests/fsm/test_diagrams_are_current.py` fails when this file and the tables disagree.

Edges are labelled `trigger [guard] / facts recorded`. For one trigger and source, edges are tried in the
table's order and the first whose guard passes wins. `[*]` is the machine's origin (`New`).

## Phase (`status.phase`)

Every edge records a `PhaseChanged` decision with the trigger, a condition reason and a message.

```mermaid
{render_mermaid(PHASE_TABLE)}```

## Placement (the adapter on one pod)

Every edge records a `PlacementChanged` decision; the facts after `/` are recorded before it.
A placement that reaches `Unloaded` leaves the adapter's state.

```mermaid
{render_mermaid(PLACEMENT_TABLE)}```
"""


if __name__ == "__main__":
    print(render_document(), end="")
