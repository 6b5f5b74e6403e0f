"""Every event the operator records is one line of its log: WARNING for what went wrong, INFO for the steps of
a normal life, DEBUG for bookkeeping, each with the adapter, namespace, pod, reason and attempt."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from docs.catalogue import example_story
from modeladapter.fsm import events as ev
from modeladapter.fsm.events import EVENT_TYPES, AdapterEvent, RecordedEvent
from modeladapter.fsm.phases import Phase, PlacementState
from modeladapter.operator.audit.narration import narrate
from modeladapter.operator.controller.logs import log_context
from modeladapter.operator.controller.story import story_line, tell
from tests.operator.conftest import Captured

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
POD, OTHER = "qwen-coder-1-5b-instruct-0", "qwen-coder-1-5b-instruct-1"
ARTIFACT = "huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora"
REFUSED = (
    "EngineUnavailable: load: vllm at 10.0.0.11:8000 is unreachable (ConnectError: [Errno 111] Connection refused)"
)


def recorded(payload: AdapterEvent, *, version: int = 1) -> RecordedEvent:
    return RecordedEvent(
        stream_id="5e1c0c7e-2b8f-4d8a-9a57-3f0e8c1d2a4b",
        namespace="team-a",
        name="qwen-code-lora",
        version=version,
        position=100 + version,
        event_id=uuid.uuid4(),
        recorded_at=NOW,
        reconcile_id="0b5f3c2a9d8e7f61",
        observed_generation=1,
        payload=payload,
    )


def phase(source: Phase | None, target: Phase, reason: str) -> ev.PhaseChanged:
    return ev.PhaseChanged(from_phase=source, to_phase=target, trigger="t", reason=reason, message=f"to {target}")


# (the event, its level, reason, pod, attempt): the list first, then the rest of the story.
LINES = [
    pytest.param(phase(Phase.PENDING, Phase.SCHEDULED, "Scheduled"), "INFO", "Scheduled", None, None, id="phase-change"),
    pytest.param(phase(Phase.BOUND, Phase.RUNNING, "ModelAdapterAvailable"), "INFO", "ModelAdapterAvailable", None, None, id="phase-running"),
    pytest.param(phase(Phase.LOADING, Phase.FAILED, "ModelAdapterLoadingError"), "WARNING", "ModelAdapterLoadingError", None, None, id="phase-failed"),
    pytest.param(ev.LoadFailed(pod=POD, attempt=2, error=REFUSED, retriable=True, retry_at=NOW + timedelta(seconds=10)), "WARNING", "LoadFailed", POD, 2, id="load-failure"),
    pytest.param(ev.LoadStarted(pod=POD, attempt=3, artifact_url=ARTIFACT), "INFO", "Retrying", POD, 3, id="retry"),
    pytest.param(ev.PodSwitched(from_pod=POD, to_pod=OTHER, reason=f"MaxRetriesExceeded: {REFUSED}"), "WARNING", "PodSwitched", OTHER, None, id="pod-switch"),
    pytest.param(ev.PodLost(pod=POD, reason="pod deleted"), "WARNING", "PodLost", POD, None, id="pod-loss"),
    pytest.param(ev.RolloutStarted(from_artifacts=(ARTIFACT,), to_artifact=f"{ARTIFACT}-v2", instances=2, max_unavailable=1, max_surge=0), "INFO", "RolloutStarted", None, None, id="rollout-start"),
    pytest.param(ev.InstanceUpdated(pod=POD, artifact=f"{ARTIFACT}-v2", previous=ARTIFACT), "INFO", "InstanceUpdated", POD, None, id="rollout-step"),
    pytest.param(ev.RolloutHalted(pod=POD, error=REFUSED, serving_old=1), "WARNING", "RolloutHalted", POD, None, id="rollout-halted"),
    pytest.param(ev.RolloutResumed(pod=POD), "INFO", "RolloutResumed", POD, None, id="rollout-resumed"),
    pytest.param(ev.RolloutFinished(artifact=f"{ARTIFACT}-v2", instances=2), "INFO", "RolloutFinished", None, None, id="rollout-finished"),
    pytest.param(ev.UnloadStarted(pod=POD, deadline=NOW + timedelta(minutes=1)), "INFO", "UnloadStarted", POD, None, id="unload-start"),
    pytest.param(ev.Unloaded(pod=POD, outcome="unloaded"), "INFO", "Unloaded", POD, None, id="unload"),
    pytest.param(ev.Unloaded(pod=POD, outcome="abandoned"), "WARNING", "Unloaded", POD, None, id="unload-abandoned"),
    pytest.param(ev.UnloadFailed(pod=POD, error=REFUSED, abandoned=False, retry_at=NOW), "WARNING", "UnloadFailed", POD, None, id="unload-failure"),
    pytest.param(ev.LoadStarted(pod=POD, attempt=1, artifact_url=ARTIFACT), "INFO", "LoadStarted", POD, 1, id="first-load"),
    pytest.param(ev.LoadSucceeded(pod=POD, attempt=1, duration_ms=812.5), "INFO", "LoadSucceeded", POD, 1, id="loaded"),
    pytest.param(ev.PlacementExhausted(pod=POD, attempts=5, cause="max-retries", reconsider_at=NOW), "WARNING", "PlacementExhausted", POD, 5, id="exhausted"),
    pytest.param(ev.AdapterMissing(pod=POD, reason="not listed by the engine's /v1/models"), "WARNING", "AdapterMissing", POD, None, id="adapter-missing"),
    pytest.param(ev.PodSelected(pod=POD, policy="least-adapters", reason="least-adapters: 0 adapters on the pod"), "INFO", "PodSelected", POD, None, id="pod-selected"),
    pytest.param(ev.SpecRejected(generation=2, field="spec.replicas", rule="must be at least 1", message="spec.replicas: must be at least 1 (got 0)"), "WARNING", "SpecRejected", None, None, id="spec-rejected"),
    pytest.param(ev.OwnedObjectRestored(kind="Service", name="qwen-code-lora", change="deleted"), "WARNING", "OwnedObjectRestored", None, None, id="object-restored"),
    pytest.param(ev.Finalized(), "INFO", "Finalized", None, None, id="finalized"),
    pytest.param(phase(Phase.RUNNING, Phase.RUNNING, "PodsChanged"), "DEBUG", "PodsChanged", None, None, id="phase-kept"),
    pytest.param(ev.PlacementChanged(pod=POD, from_state=PlacementState.LOADING, to_state=PlacementState.BACKOFF, trigger="load_failed"), "DEBUG", "PlacementChanged", POD, None, id="placement-state"),
    pytest.param(ev.ServiceBound(service="qwen-code-lora", endpoints=("10.0.0.11",)), "DEBUG", "ServiceBound", None, None, id="service-bound"),
]  # fmt: skip


@pytest.mark.parametrize(("payload", "level", "reason", "pod", "attempt"), LINES)
def test_each_event_is_one_line_with_its_level_and_fields(
    capture: Callable[..., Captured],
    payload: AdapterEvent,
    level: str,
    reason: str,
    pod: str | None,
    attempt: int | None,
) -> None:
    out = capture("json", level="DEBUG")
    tell([recorded(payload)])
    (line,) = out.records()
    assert line["level"] == level
    assert {key: line[key] for key in ("adapter", "namespace", "pod", "reason", "attempt", "event")} == {
        "adapter": "qwen-code-lora",
        "namespace": "team-a",
        "pod": pod,
        "reason": reason,
        "attempt": attempt,
        "event": payload.type,
    }
    assert (line["uid"], line["reconcile_id"]) == ("5e1c0c7e-2b8f-4d8a-9a57-3f0e8c1d2a4b", "0b5f3c2a9d8e7f61")
    assert line["message"] == narrate(payload)
    assert line["logger"] == "modeladapter.operator.controller.story"


def test_a_switch_names_the_pod_it_left_too(capture: Callable[..., Captured]) -> None:
    out = capture("json")
    tell([recorded(ev.PodSwitched(from_pod=POD, to_pod=OTHER, reason="PodLost: pod deleted"))])
    (line,) = out.records()
    assert (line["pod"], line["from_pod"]) == (OTHER, POD)


def test_every_event_type_has_a_line_telling_it() -> None:
    story = example_story()
    assert {event.payload.type for event in story} == EVENT_TYPES
    for event in story:
        told = story_line(event.payload)  # raises for an event type this module does not know
        assert told.level in (logging.DEBUG, logging.INFO, logging.WARNING), event.payload.type
        assert told.reason.isalnum() and told.reason[0].isupper(), f"{event.payload.type}: {told.reason!r}"


def test_at_info_the_story_leaves_out_only_the_bookkeeping(capture: Callable[..., Captured]) -> None:
    out = capture("json", level="INFO")
    story = example_story()
    tell(story)
    told = [line["event"] for line in out.records()]
    expected = [
        event.payload.type
        for event in story
        if event.payload.type not in ("PlacementChanged", "ServiceBound")
        and not (isinstance(event.payload, ev.PhaseChanged) and event.payload.from_phase is event.payload.to_phase)
    ]
    assert told == expected


def test_a_line_names_its_own_adapter_even_inside_another_adapters_context(capture: Callable[..., Captured]) -> None:
    """An orphan's clean-up has no object to name it; the event itself does."""
    out = capture("json")
    with log_context(adapter="other", namespace="default", uid="u-other", reconcile_id="r-other"):
        tell([recorded(ev.PodLost(pod=POD, reason="pod deleted"))])
    (line,) = out.records()
    assert (line["adapter"], line["namespace"], line["uid"], line["reconcile_id"]) == (
        "qwen-code-lora",
        "team-a",
        "5e1c0c7e-2b8f-4d8a-9a57-3f0e8c1d2a4b",
        "0b5f3c2a9d8e7f61",
    )


def test_a_text_line_tags_the_adapter_and_leaves_out_fields_without_a_value(capture: Callable[..., Captured]) -> None:
    out = capture("text")
    tell([recorded(phase(Phase.BOUND, Phase.RUNNING, "ModelAdapterAvailable"))])
    (line,) = out.lines()
    _, rest = line.split(" ", 1)
    assert rest == (
        "INFO  modeladapter.operator.controller.story [team-a/qwen-code-lora reconcile=0b5f3c2a9d8e7f61] "
        "phase Bound -> Running (t: to Running) event=PhaseChanged reason=ModelAdapterAvailable"
    )


def test_a_secret_in_an_engine_error_never_reaches_the_line(capture: Callable[..., Captured]) -> None:
    """Errors are masked before they are recorded; if one slipped through, the log handler masks it too."""
    out = capture("json")
    error = "load: 401 from http://10.0.0.11:8000 with Authorization: Bearer sk-live-31337"
    tell([recorded(ev.LoadFailed(pod=POD, attempt=1, error=error, retriable=False, retry_at=None))])
    written = out.stream.getvalue()
    assert "sk-live-31337" not in written and "Bearer ***" in written


def test_at_warning_only_what_went_wrong_is_written(capture: Callable[..., Captured]) -> None:
    out = capture("json", level="WARNING")
    tell([recorded(event.payload, version=event.version) for event in example_story()])
    warned = {line["event"] for line in out.records()}
    assert warned and warned <= {
        "LoadFailed", "PlacementExhausted", "PodSwitched", "PodLost", "AdapterMissing", "UnloadFailed", "Unloaded",
        "RolloutHalted", "SpecRejected", "OwnedObjectRestored", "PhaseChanged",
    }  # fmt: skip
    assert all(line["level"] == "WARNING" for line in out.records())
