"""Every placement state against every kind of observation → the triggers a reconcile's first round fires.

One pod, `p`, holds a placement of a one-replica adapter in the row's state; the column is what the operator
sees this pass: the pod deleted, no longer selected, not Ready; its engine's listing (missing, listed,
unreachable); or nothing new, with the placement's retry time past (`due`) or ahead (`quiet`). The cell is the
sequence of triggers fired for `p` by the observation rules and then the scheduling rules (`-`: none), read
like the placement machine's own matrix in `tests/fsm/test_placement_machine.py`.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from modeladapter.fsm.observations import Listed, Listing
from modeladapter.fsm.phases import PlacementState
from modeladapter.fsm.planning import plan_convergence, plan_observations
from tests.reconcile.planning_inputs import NOW, SETTINGS, adapter, desired, fired, observe, placement, pod

MATRIX = """
state      gone      unselected  unhealthy  missing                listed          unreachable            due                    quiet
Assigned   pod_gone  unload      pod_lost   start_load             start_load      start_load             start_load             start_load
Loading    pod_gone  unload      pod_lost   load_failed            load_succeeded  load_failed            -                      -
Backoff    pod_gone  unload      pod_lost   -                      -               -                      retry_due              -
Loaded     pod_gone  unload      pod_lost   adapter_missing,reload -               adapter_missing,reload -                      -
Exhausted  pod_gone  unload      -          -                      -               -                      reconsider,start_load  -
Lost       pod_gone  unload      -          reload                 reload          reload                 reload                 reload
Unloading  pod_gone  -           -          -                      -               -                      -                      -
"""

LISTINGS = {
    "missing": Listing(Listed.MISSING),
    "listed": Listing(Listed.LOADED),
    "unreachable": Listing(Listed.UNREACHABLE, "connection refused"),
}


def _cases() -> list[object]:
    header, *rows = [line.split() for line in MATRIX.strip().splitlines()]
    return [
        pytest.param(row[0], column, [] if cell == "-" else cell.split(","), id=f"{row[0]}-{column}")
        for row in rows
        for column, cell in zip(header[1:], row[1:], strict=True)
    ]


@pytest.mark.parametrize(("state", "seen", "expected"), _cases())
def test_what_a_first_round_fires_for_a_placement(state: str, seen: str, expected: list[str]) -> None:
    retry_at = NOW - timedelta(seconds=1) if seen == "due" else NOW + timedelta(minutes=1)
    placement_state = PlacementState(state)
    attempts = 0 if placement_state in (PlacementState.ASSIGNED, PlacementState.LOST) else 1
    folded = adapter(placement("p", placement_state, attempts=attempts, retry_at=retry_at))
    pods = {
        "gone": observe(),
        "unselected": observe(pod("p", matches=False)),
        "unhealthy": observe(pod("p", ready=False)),
    }.get(seen, observe(pod("p")))
    observed = plan_observations(folded, pods, SETTINGS, listings={"p": LISTINGS[seen]} if seen in LISTINGS else {})
    converged = plan_convergence(observed.after, pods, desired(replicas=1), SETTINGS)
    assert fired(observed, "p") + fired(converged, "p") == expected
