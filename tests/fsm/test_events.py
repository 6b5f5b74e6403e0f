"""Events are frozen, strictly shaped, and survive the trip to JSON and back under their stable type name."""

from __future__ import annotations

import typing
from datetime import datetime

import pydantic
import pytest

from modeladapter.fsm import events as ev
from modeladapter.fsm.phases import Phase, PlacementState


def one_of_each(at: datetime) -> list[ev.AdapterEvent]:
    return [
        ev.SpecObserved(
            generation=2, artifact_url="hf://org/repo", replicas=None, scheduler_name="default", pod_selector="a=b"
        ),
        ev.SpecRejected(generation=2, field="spec.replicas", rule="must be at least 1", message="spec.replicas: 0"),
        ev.PodSelected(pod="p", policy="bin-pack", reason="fullest pod with room"),
        ev.PodSwitched(from_pod="p", to_pod="q", reason="MaxRetriesExceeded"),
        ev.LoadStarted(pod="p", attempt=1, artifact_url="/a"),
        ev.LoadSucceeded(pod="p", attempt=1, duration_ms=12.5),
        ev.LoadFailed(pod="p", attempt=2, error="connection refused", retriable=True, retry_at=at),
        ev.PlacementExhausted(pod="p", attempts=5, cause="max-retries", reconsider_at=at),
        ev.AdapterMissing(pod="p", reason="engine restarted"),
        ev.PodLost(pod="p", reason="deleted"),
        ev.UnloadStarted(pod="p"),
        ev.Unloaded(pod="p", outcome="pod-gone"),
        ev.UnloadFailed(pod="p", error="timeout", abandoned=False),
        ev.ServiceBound(service="svc", endpoints=("10.0.0.1", "10.0.0.2")),
        ev.OwnedObjectRestored(kind="EndpointSlice", name="svc", change="edited"),
        ev.RolloutStarted(from_artifacts=("/a/v1",), to_artifact="/a/v2", instances=3, max_unavailable=1, max_surge=1),
        ev.InstanceUpdated(pod="p", artifact="/a/v2", previous="/a/v1"),
        ev.RolloutHalted(pod="p", error="ArtifactNotFound: no adapter at /a/v2", serving_old=2),
        ev.RolloutResumed(pod="p"),
        ev.RolloutFinished(artifact="/a/v2", instances=3, rolled_back=False),
        ev.Finalized(),
        ev.PhaseChanged(from_phase=None, to_phase=Phase.PENDING, trigger="created", reason="R", message="M"),
        ev.PlacementChanged(pod="p", from_state=PlacementState.LOADING, to_state=PlacementState.LOADED, trigger="t"),
    ]


def test_there_is_one_example_of_every_event_type(epoch: datetime) -> None:
    assert {e.type for e in one_of_each(epoch)} == ev.EVENT_TYPES
    assert len(typing.get_args(typing.get_args(ev.AdapterEvent)[0])) == len(ev.EVENT_TYPES)


def test_every_event_round_trips_through_json_by_its_type_name(epoch: datetime) -> None:
    for event in one_of_each(epoch):
        data = event.model_dump(mode="json")
        assert data["type"] == type(event).__name__
        assert data["schema_version"] == 1
        assert ev.ADAPTER_EVENT.validate_python(data) == event


def test_events_are_frozen(epoch: datetime) -> None:
    event = ev.PodLost(pod="p", reason="deleted")
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        event.pod = "q"  # type: ignore[misc]


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="Extra inputs are not permitted"):
        ev.ADAPTER_EVENT.validate_python({"type": "PodLost", "pod": "p", "reason": "x", "api_key": "sk-..."})


def test_an_unknown_type_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="does not match any of the expected tags"):
        ev.ADAPTER_EVENT.validate_python({"type": "PodExploded", "pod": "p"})


def test_times_must_carry_a_zone() -> None:
    with pytest.raises(pydantic.ValidationError, match="timezone"):
        ev.LoadFailed(pod="p", attempt=1, error="x", retriable=True, retry_at=datetime(2026, 1, 1))


def test_stamping_gives_one_reconciles_events_the_same_envelope(epoch: datetime) -> None:
    stamped = ev.stamp(one_of_each(epoch)[:3], at=epoch, reconcile_id="r-1", observed_generation=4)
    assert {(s.recorded_at, s.reconcile_id, s.observed_generation) for s in stamped} == {(epoch, "r-1", 4)}
    assert len({s.event_id for s in stamped}) == 3
