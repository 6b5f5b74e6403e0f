"""Which phase trigger moves an adapter one edge closer to the phase its situation calls for. Pure.

The reconciler works out where an adapter should be (Running: verified instances and a Service; Loading:
loads under way; Pending: nowhere to go ...) and follows the phase table there one edge at a time, so the
history always shows the documented sequence `Pending -> Scheduled -> Loading -> Bound -> Running` even when
one reconcile gets all the way.

`next_trigger(current, target, ...)` names the next edge. Leaving `Failed` needs a reason (`spec_changed`,
`pods_changed` or `retry_due`), and so does entering it (`spec_invalid` from anywhere, or `loading_failed`,
which only leaves `Loading`); the caller says which.
"""

from __future__ import annotations

from modeladapter.fsm.phases import Phase, PhaseTrigger

P, T = Phase, PhaseTrigger

# Forward path: from each phase, the edge towards each of the serving phases.
_TOWARDS: dict[tuple[Phase, Phase], PhaseTrigger] = {
    (P.PENDING, P.SCHEDULED): T.PODS_SELECTED,
    (P.PENDING, P.LOADING): T.PODS_SELECTED,
    (P.PENDING, P.BOUND): T.PODS_SELECTED,
    (P.PENDING, P.RUNNING): T.PODS_SELECTED,
    (P.SCHEDULED, P.LOADING): T.LOAD_STARTED,
    (P.SCHEDULED, P.BOUND): T.LOAD_STARTED,
    (P.SCHEDULED, P.RUNNING): T.LOAD_STARTED,
    (P.LOADING, P.SCHEDULED): T.PODS_SELECTED,
    (P.LOADING, P.BOUND): T.LOAD_VERIFIED,
    (P.LOADING, P.RUNNING): T.LOAD_VERIFIED,
    (P.BOUND, P.SCHEDULED): T.PODS_SELECTED,
    (P.BOUND, P.LOADING): T.LOAD_STARTED,
    (P.BOUND, P.RUNNING): T.SERVICE_BOUND,
    (P.RUNNING, P.SCHEDULED): T.PODS_SELECTED,
    (P.RUNNING, P.LOADING): T.LOAD_STARTED,
    (P.RUNNING, P.BOUND): T.SERVICE_LOST,
}


def next_trigger(
    current: Phase | None,
    target: Phase,
    *,
    failure: PhaseTrigger = T.LOADING_FAILED,
    leaving_failed: PhaseTrigger = T.RETRY_DUE,
) -> PhaseTrigger | None:
    """The trigger of the next edge from `current` towards `target`; None when already there.

    `failure` is how `target=Failed` is reached: `spec_invalid` (from any phase) or `loading_failed` (the
    loads ran out of pods, from `Loading`). `leaving_failed` is why a `Failed` adapter starts over.
    """
    if current is None:
        return T.DELETION_REQUESTED if target is P.TERMINATING else T.CREATED
    if current is P.TERMINATING:
        return None
    if target is P.TERMINATING:
        return T.DELETION_REQUESTED
    if target is P.FAILED:
        if current is P.FAILED:
            return None
        if failure is T.SPEC_INVALID:
            return T.SPEC_INVALID
        return T.LOADING_FAILED if current is P.LOADING else next_trigger(current, P.LOADING)
    if current is target:
        return None
    if current is P.FAILED:
        return leaving_failed
    if target is P.PENDING:
        return T.PODS_UNAVAILABLE
    return _TOWARDS[(current, target)]
