"""The ModelAdapter's `status` and retry annotations, projected from the folded state. Pure.

The log is the truth; `status` is a view of it that the operator writes only when it changed. The conditions
reproduce the seed documentation's `kubectl describe` output:

* `Initialized` Unknown `ModelAdapterPending` "Starting reconciliation" — set on the first reconcile and, as
  in the documentation, left as it is;
* `Scheduled` True `Scheduled` "ModelAdapter <ns>/<name> has selected <N> pods for scheduling: [<pod> ...]"
  while pods are selected (the pod list printed as Go prints a slice, as AIBrix does), False with the reason
  (`NoCandidatePods`, `InsufficientCapacity`, `WaitingForStablePods` ...) while none can be;
* `Ready` True `ModelAdapterAvailable` "ModelAdapter <ns>/<name> is ready" only when Running — that is, with
  at least one verified instance and the Service and EndpointSlice in place — and False with the phase's
  reason and message otherwise, once the adapter got that far;
* `Progressing` (ours, once an update of `artifactURL` happened): True `RollingUpdate` while it rolls, False
  `UpdateFailed` naming the pod and the error while it is halted, True `UpdateComplete` (or `RolledBack`) once
  every instance serves the spec's artifact (`modeladapter.fsm.rollout`).

`instances` lists exactly the pods whose engine was verified to serve the adapter. The retry annotations
`adapter.model.aibrix.ai/retry-count.<pod>` and `.../last-retry-time.<pod>` (RFC 3339) mirror the placements
that are retrying; unlike AIBrix's, they are really written (and come from the log, not from memory).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, TypedDict

from modeladapter.fsm.phases import Phase, PlacementState
from modeladapter.fsm.state import AdapterState
from modeladapter.fsm.wording import progress_condition, ready_message, scheduled_message
from modeladapter.operator.api.conditions import Condition, format_time, set_conditions

RETRY_COUNT: Final = "adapter.model.aibrix.ai/retry-count"
LAST_RETRY_TIME: Final = "adapter.model.aibrix.ai/last-retry-time"
_RETRYING: Final = frozenset({PlacementState.LOADING, PlacementState.BACKOFF, PlacementState.EXHAUSTED})
MAX_SHOWN_URL: Final = 2048
_UNSCHEDULED: Final = frozenset({Phase.PENDING, Phase.FAILED})


class StatusDocument(TypedDict, total=False):
    """`status` of a ModelAdapter as JSON, kopf's "raw" convention: what the projection writes, and what an
    object shows (any field may be missing there)."""

    phase: str
    conditions: list[dict[str, Any]]
    instances: list[str]
    candidates: int
    desiredReplicas: int
    readyReplicas: int
    observedGeneration: int
    placements: list[dict[str, Any]]


def project_status(
    state: AdapterState,
    *,
    namespace: str,
    name: str,
    generation: int,
    candidates: int,
    desired: int,
    current: StatusDocument,
    now: datetime,
) -> StatusDocument:
    """The `status` the object should have; `current` is what it has (its conditions' times are kept)."""
    existing = current.get("conditions") or []
    wanted = [Condition("Initialized", "Unknown", "ModelAdapterPending", "Starting reconciliation")]
    selected = state.selected_pods
    if selected:
        wanted.append(Condition("Scheduled", "True", "Scheduled", scheduled_message(namespace, name, selected)))
    elif state.phase in _UNSCHEDULED and state.phase_trigger in ("pods_unavailable", "loading_failed"):
        wanted.append(
            Condition("Scheduled", "False", state.phase_reason or "NoCandidatePods", state.phase_message or "")
        )
    if state.phase is Phase.RUNNING:
        wanted.append(Condition("Ready", "True", "ModelAdapterAvailable", ready_message(namespace, name)))
    elif _has_condition(existing, "Ready") or state.phase not in (None, Phase.PENDING, Phase.SCHEDULED):
        wanted.append(Condition("Ready", "False", state.phase_reason or "NotReady", state.phase_message or ""))
    progress = progress_condition(state)
    if progress is not None:
        wanted.append(Condition("Progressing", *progress))
    conditions = set_conditions(existing, wanted, now=now, observed_generation=generation)
    return {
        "phase": state.phase.value if state.phase is not None else Phase.PENDING.value,
        "conditions": conditions,
        "instances": list(state.instances),
        "candidates": candidates,
        "desiredReplicas": desired,
        "readyReplicas": len(state.instances),
        "observedGeneration": generation,
        "placements": [
            {
                "pod": p.pod,
                "state": p.state.value,
                "attempts": p.attempts,
                "lastError": p.last_error or "",
                "artifactURL": _shown_url(p.artifact_url or ""),
                "since": format_time(p.since),
            }
            for p in state.placements
        ],
    }


def _shown_url(url: str) -> str:
    """An artifact URL as the status shows it: a long one is cut, so that a spec near the API's size limit does
    not make its status twice as large (the spec and the log keep it whole)."""
    cut = "... (cut short)"
    return url if len(url) <= MAX_SHOWN_URL else url[: MAX_SHOWN_URL - len(cut)] + cut


def retry_annotations(state: AdapterState, current: Mapping[str, str]) -> dict[str, str | None]:
    """A merge patch for `metadata.annotations`: the retry annotations wanted, None for stale ones."""
    wanted: dict[str, str] = {}
    for placement in state.placements:
        if placement.state in _RETRYING and placement.attempts > 0:
            suffix = _pod_suffix(placement.pod)
            wanted[f"{RETRY_COUNT}.{suffix}"] = str(placement.attempts)
            wanted[f"{LAST_RETRY_TIME}.{suffix}"] = format_time(placement.since)
    patch: dict[str, str | None] = {key: None for key in current if _is_retry_key(key) and key not in wanted}
    patch.update({key: value for key, value in wanted.items() if current.get(key) != value})
    return patch


def _is_retry_key(key: str) -> bool:
    return key.startswith((f"{RETRY_COUNT}.", f"{LAST_RETRY_TIME}."))


def _pod_suffix(pod: str) -> str:
    """The pod name as an annotation-key suffix; a key's name part may not exceed 63 characters."""
    room = 63 - len("last-retry-time.")
    if len(pod) <= room:
        return pod
    digest = hashlib.sha256(pod.encode()).hexdigest()[:8]
    return f"{pod[: room - 9]}-{digest}"


def _has_condition(conditions: Any, kind: str) -> bool:
    return any(isinstance(c, Mapping) and c.get("type") == kind for c in conditions)
