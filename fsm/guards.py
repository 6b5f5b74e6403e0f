"""Pure predicates the transition tables use to choose between edges of the same trigger.

For one trigger and source, edges are tried top to bottom and the first whose guard passes wins; the last
edge of such a group has no guard, so a trigger accepted in a state always leads somewhere.
"""

from __future__ import annotations

from collections.abc import Callable

from modeladapter.fsm.facts import Decision

Guard = Callable[[Decision], bool]


def retriable(d: Decision) -> bool:
    """The failure is worth another attempt on the same pod."""
    return d.facts.retriable


def attempts_left(d: Decision) -> bool:
    """The pod has not used up its attempts (5 by default)."""
    return d.facts.backoff.attempts_left(d.attempts)


def unload_deadline_passed(d: Decision) -> bool:
    """The unload has been tried long enough on this pod; it must not block the finalizer any longer.

    The deadline set when unloading began (in the log) wins over one the caller passes now, so that a
    deadline cannot keep moving.
    """
    recorded = d.placement.unload_deadline if d.placement is not None else None
    deadline = recorded or d.facts.unload_deadline
    return deadline is not None and d.facts.now >= deadline
