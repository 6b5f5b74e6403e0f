"""What a reconcile returns: controller-runtime's `Result`, with what the controller counts.

`requeue_after` is the earliest deadline the adapter waits for (a retry, a verification, a pod's stability
window ...); None means nothing is due, and only a change (or the safety resync) brings it back. Failures are
exceptions, never a special value: an append conflict is handled once, inside the reconcile (requeue at once,
the next pass reads the log again); anything else reaches the controller, which retries with backoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from modeladapter.fsm.events import AdapterEvent
from modeladapter.fsm.phases import Phase
from modeladapter.fsm.plans import CallOutcome


@dataclass(frozen=True, slots=True)
class Result:
    requeue_after: timedelta | None
    phase: Phase | None
    """The adapter's phase after the pass (None: no decision yet)."""
    finalized: bool = False
    """The adapter's stream ended: it is gone for good."""
    appended: tuple[AdapterEvent, ...] = ()
    append_seconds: tuple[float, ...] = ()
    load_calls: tuple[CallOutcome, ...] = ()
    """The load calls the pass made to engines (held ones, never called, are not among them)."""
    conflict: bool = False
    """Another writer appended first; the pass stopped there."""
    namespace: str = ""
    name: str = ""
    instances: tuple[str, ...] = ()
    """The pods whose engine was verified to serve the adapter, after the pass."""
