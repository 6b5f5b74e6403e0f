"""The facts each placement edge records, built from the decision's facts and the folded state.

These are the only callbacks besides the decision recorder: they return events and touch nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from modeladapter.fsm.events import (
    AdapterEvent,
    AdapterMissing,
    InstanceUpdated,
    LoadFailed,
    LoadStarted,
    LoadSucceeded,
    PlacementExhausted,
    PodLost,
    PodSelected,
    PodSwitched,
    Unloaded,
    UnloadFailed,
    UnloadStarted,
)
from modeladapter.fsm.facts import Decision
from modeladapter.fsm.phases import PlacementState

Emitter = Callable[[Decision], list[AdapterEvent]]


def pod_selected(d: Decision) -> list[AdapterEvent]:
    events: list[AdapterEvent] = [PodSelected(pod=d.pod, policy=d.facts.policy, reason=d.facts.reason)]
    if d.facts.replaces is not None:
        events.append(PodSwitched(from_pod=d.facts.replaces, to_pod=d.pod, reason=d.facts.reason))
    return events


def load_started(d: Decision) -> list[AdapterEvent]:
    return [LoadStarted(pod=d.pod, attempt=d.attempts + 1, artifact_url=d.artifact_url, replacing=_replacing(d))]


def _replacing(d: Decision) -> str | None:
    """The artifact the pod last served, if this load updates it to another (kept across the update's retries)."""
    placement = d.placement
    if placement is None:
        return None
    served: str | None
    if placement.replacing is not None:
        served = placement.replacing
    elif d.facts.replacing is not None:
        served = d.facts.replacing
    elif placement.state in (PlacementState.LOADED, PlacementState.LOST):
        served = placement.artifact_url
    else:
        return None  # it served nothing yet (a fresh placement, or one that only failed)
    return served if served and served != d.artifact_url else None


def load_succeeded(d: Decision) -> list[AdapterEvent]:
    events: list[AdapterEvent] = [LoadSucceeded(pod=d.pod, attempt=d.attempts, duration_ms=d.facts.duration_ms)]
    placement = d.placement
    if placement is not None and placement.replacing is not None and placement.artifact_url is not None:
        events.append(InstanceUpdated(pod=d.pod, artifact=placement.artifact_url, previous=placement.replacing))
    return events


def load_failed_will_retry(d: Decision) -> list[AdapterEvent]:
    retry_at = d.facts.backoff.retry_at(d.facts.now, d.attempts)
    return [LoadFailed(pod=d.pod, attempt=d.attempts, error=d.facts.error, retriable=True, retry_at=retry_at)]


def load_failed_for_good(d: Decision) -> list[AdapterEvent]:
    return [
        LoadFailed(pod=d.pod, attempt=d.attempts, error=d.facts.error, retriable=False, retry_at=None),
        _exhausted(d, "non-retriable"),
    ]


def retries_exhausted(d: Decision) -> list[AdapterEvent]:
    return [_exhausted(d, "max-retries")]


def adapter_missing(d: Decision) -> list[AdapterEvent]:
    return [AdapterMissing(pod=d.pod, reason=d.facts.reason)]


def pod_lost(d: Decision) -> list[AdapterEvent]:
    return [PodLost(pod=d.pod, reason=d.facts.reason)]


def pod_gone(d: Decision) -> list[AdapterEvent]:
    return [PodLost(pod=d.pod, reason=d.facts.reason), Unloaded(pod=d.pod, outcome="pod-gone")]


def unload_started(d: Decision) -> list[AdapterEvent]:
    return [UnloadStarted(pod=d.pod, deadline=d.facts.unload_deadline)]


def nothing_to_unload(d: Decision) -> list[AdapterEvent]:
    return [Unloaded(pod=d.pod, outcome="not-loaded")]


def unloaded(d: Decision) -> list[AdapterEvent]:
    return [Unloaded(pod=d.pod, outcome="unloaded")]


def unload_failed(d: Decision) -> list[AdapterEvent]:
    retry_at = d.facts.now + d.facts.backoff.base
    return [UnloadFailed(pod=d.pod, error=d.facts.error, abandoned=False, retry_at=retry_at)]


def unload_abandoned(d: Decision) -> list[AdapterEvent]:
    return [UnloadFailed(pod=d.pod, error=d.facts.error, abandoned=True), Unloaded(pod=d.pod, outcome="abandoned")]


def _exhausted(d: Decision, cause: Literal["max-retries", "non-retriable"]) -> PlacementExhausted:
    reconsider_at = d.facts.backoff.reconsider_at(d.facts.now)
    return PlacementExhausted(pod=d.pod, attempts=d.attempts, cause=cause, reconsider_at=reconsider_at)
