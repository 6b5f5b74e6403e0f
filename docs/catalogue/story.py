"""The example story of the catalogue: one adapter's stream, built the way a reconcile builds it.

The observations are scripted; every decision is the state machines' own (`decide`). The benchmarks and the
narration tests use it too, as a realistic stream.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from modeladapter.adapters.outcomes import EngineUnavailable
from modeladapter.adapters.selection import EngineKind, EngineTarget
from modeladapter.fsm import events as ev
from modeladapter.fsm.backoff import DEFAULT_BACKOFF
from modeladapter.fsm.facts import Facts
from modeladapter.fsm.machine import decide
from modeladapter.fsm.phases import PhaseTrigger, PlacementState, PlacementTrigger, Trigger
from modeladapter.fsm.state import AdapterState, fold
from modeladapter.fsm.wording import ready_message, scheduled_message

# The example adapter: AIBrix's seed sample, `samples/adapter/adapter.yaml`, with `replicas: 1`.
NAMESPACE: Final = "default"
NAME: Final = "qwen-code-lora"
STREAM_ID: Final = "5e1c0c7e-2b8f-4d8a-9a57-3f0e8c1d2a4b"
ARTIFACT: Final = "huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora"
SELECTOR: Final = "adapter.model.aibrix.ai/enabled=true,model.aibrix.ai/name=qwen-coder-1-5b-instruct"
PODS: Final = ("qwen-coder-1-5b-instruct-0", "qwen-coder-1-5b-instruct-1")
POD_IPS: Final = {PODS[0]: "10.0.0.11", PODS[1]: "10.0.0.12"}
STARTED: Final = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
FIRST_POSITION: Final = 1201
"""Positions are global: other adapters' events came before this one's."""


# Which example to show when a type occurs more than once: the most telling one.
@dataclass(slots=True)
class _Story:
    """One adapter's stream, built the way a reconcile builds it: facts recorded, decisions from `decide`."""

    events: list[ev.RecordedEvent] = field(default_factory=list)
    state: AdapterState = field(default_factory=AdapterState)
    now: datetime = STARTED
    generation: int = 1
    reconcile: int = 0

    def next_reconcile(self, after: timedelta) -> None:
        self.now += after
        self.reconcile += 1

    def record(self, *payloads: ev.AdapterEvent) -> None:
        reconcile_id = uuid.uuid5(uuid.NAMESPACE_URL, f"reconcile/{self.reconcile}").hex[:16]
        for payload in payloads:
            version = len(self.events) + 1
            recorded = ev.RecordedEvent(
                stream_id=STREAM_ID,
                namespace=NAMESPACE,
                name=NAME,
                version=version,
                position=FIRST_POSITION + version - 1,
                event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"event/{version}"),
                recorded_at=self.now,
                reconcile_id=reconcile_id,
                observed_generation=self.generation,
                payload=payload,
            )
            self.events.append(recorded)
            self.state = fold([recorded], self.state)

    def decide(self, trigger: Trigger, **facts: Any) -> None:
        self.record(*decide(self.state, trigger, Facts(now=self.now, backoff=DEFAULT_BACKOFF, **facts)))


def _refused(pod: str) -> str:
    target = EngineTarget(EngineKind.VLLM, POD_IPS[pod], 8000)
    return str(EngineUnavailable(f"load: {target} is unreachable (ConnectError: [Errno 111] Connection refused)"))


def example_story() -> list[ev.RecordedEvent]:
    """Created, five refused loads on one pod, a switch, Running, an eviction repaired, an update that halts
    and resumes, a lost pod, an invalid generation, deletion. Every decision is the state machines' own; only the observations are scripted."""
    story = _Story()
    first, second = PODS
    P, U = PhaseTrigger, PlacementTrigger
    # Reconcile 1: a new adapter; the first pod is chosen and the load is written ahead of the call.
    story.record(
        ev.SpecObserved(
            generation=1, artifact_url=ARTIFACT, replicas=1, scheduler_name="default", pod_selector=SELECTOR
        )
    )
    story.decide(P.CREATED)
    story.decide(U.ASSIGN, pod=first, policy="least-adapters", reason="least-adapters: 0 adapters on the pod")
    story.decide(U.START_LOAD, pod=first, artifact_url=ARTIFACT)
    story.decide(P.PODS_SELECTED, reason="Scheduled", message=scheduled_message(NAMESPACE, NAME, (first,)))
    story.decide(P.LOAD_STARTED, reason="Loading", message=f"loading on 1 pods: {first} (attempt 1)")
    story.decide(U.LOAD_FAILED, pod=first, error=_refused(first), retriable=True)
    # The first pod refuses every attempt: retried after 5, 10, 20 and 40 s, exhausted 80 s after the fifth.
    for wait in (5, 10, 20, 40, 80):
        story.next_reconcile(timedelta(seconds=wait))
        story.decide(U.RETRY_DUE, pod=first, artifact_url=ARTIFACT)
        placement = story.state.placement(first)
        if placement is not None and placement.state is PlacementState.LOADING:
            story.decide(U.LOAD_FAILED, pod=first, error=_refused(first), retriable=True)
    # The same reconcile switches to the second pod, which loads it; the Service lists it: Running.
    exhausted = story.state.placement(first)
    assert exhausted is not None and exhausted.state is PlacementState.EXHAUSTED
    switch = f"MaxRetriesExceeded: {exhausted.last_error}"
    story.decide(U.ASSIGN, pod=second, policy="least-adapters", replaces=first, reason=switch)
    story.decide(U.START_LOAD, pod=second, artifact_url=ARTIFACT)
    story.decide(P.PODS_SELECTED, reason="Scheduled", message=scheduled_message(NAMESPACE, NAME, (second,)))
    story.decide(P.LOAD_STARTED, reason="Loading", message=f"loading on 1 pods: {second} (attempt 1)")
    story.decide(U.LOAD_SUCCEEDED, pod=second, duration_ms=1843.2)
    story.decide(P.LOAD_VERIFIED, reason="Loaded", message=f"verified loaded on 1 pods: [{second}]")
    story.record(ev.ServiceBound(service=NAME, endpoints=(POD_IPS[second],)))
    story.decide(P.SERVICE_BOUND, reason="ModelAdapterAvailable", message=ready_message(NAMESPACE, NAME))
    # The exhausted pod rested for the cool-down and is no longer needed: the adapter is taken off it.
    story.next_reconcile(DEFAULT_BACKOFF.reconsider_at(story.now) - story.now)
    story.decide(U.UNLOAD, pod=first, unload_deadline=story.now + timedelta(seconds=60))
    story.decide(U.UNLOAD_FAILED, pod=first, error=_refused(first).replace("load:", "unload:"))
    story.next_reconcile(timedelta(seconds=5))
    story.decide(U.UNLOAD_SUCCEEDED, pod=first)
    # Someone deletes the Service by hand; the watch event brings the operator, which puts it back.
    story.next_reconcile(timedelta(seconds=12))
    story.record(ev.OwnedObjectRestored(kind="Service", name=NAME, change="deleted"))
    # The engine forgot the adapter (it restarted); verification notices and the pod gets it back.
    story.next_reconcile(timedelta(seconds=30))
    missing = "not listed by the engine's /v1/models (unloaded by another client, or the engine restarted)"
    story.decide(U.ADAPTER_MISSING, pod=second, reason=missing)
    story.decide(U.RELOAD, pod=second, artifact_url=ARTIFACT)
    story.decide(P.LOAD_STARTED, reason="Loading", message=f"loading on 1 pods: {second} (attempt 1)")
    story.decide(U.LOAD_SUCCEEDED, pod=second, duration_ms=912.7)
    story.decide(P.LOAD_VERIFIED, reason="Loaded", message=f"verified loaded on 1 pods: [{second}]")
    story.decide(P.SERVICE_BOUND, reason="ModelAdapterAvailable", message=ready_message(NAMESPACE, NAME))
    # A new version: with `replicas: 1` and a free pod, it surges onto the first pod, whose engine refuses the
    # load; the rollout halts there while the second pod keeps serving the old version.
    story.next_reconcile(timedelta(hours=2))
    story.generation = 2
    version_2 = f"{ARTIFACT}-v2"
    story.record(
        ev.SpecObserved(
            generation=2, artifact_url=version_2, replicas=1, scheduler_name="default", pod_selector=SELECTOR
        ),
        ev.RolloutStarted(
            from_artifacts=(ARTIFACT,), to_artifact=version_2, instances=1, max_unavailable=1, max_surge=1
        ),
    )
    surge = "surge: the new artifact is loaded here before an instance of the old one retires"
    story.decide(
        U.ASSIGN, pod=first, policy="least-adapters", reason=f"{surge} (least-adapters: 0 adapters on the pod)"
    )
    story.decide(U.START_LOAD, pod=first, artifact_url=version_2)
    story.decide(U.LOAD_FAILED, pod=first, error=_refused(first), retriable=True)
    story.record(ev.RolloutHalted(pod=first, error=_refused(first), serving_old=1))
    # The retry loads it: the rollout resumes, and the old instance retires once the new one is listed.
    story.next_reconcile(timedelta(seconds=5))
    story.decide(U.RETRY_DUE, pod=first, artifact_url=version_2)
    story.decide(U.LOAD_SUCCEEDED, pod=first, duration_ms=2204.9)
    story.record(ev.RolloutResumed(pod=first))
    story.record(ev.ServiceBound(service=NAME, endpoints=(POD_IPS[first], POD_IPS[second])))
    story.record(ev.InstanceUpdated(pod=first, artifact=version_2, previous=ARTIFACT, replaced_pod=second))
    story.decide(U.UNLOAD, pod=second, unload_deadline=story.now + timedelta(seconds=60))
    story.record(ev.ServiceBound(service=NAME, endpoints=(POD_IPS[first],)))
    story.decide(U.UNLOAD_SUCCEEDED, pod=second)
    story.record(ev.RolloutFinished(artifact=version_2, instances=1))
    serving = first
    # The pod stops being Ready: it leaves the instances and the EndpointSlice at once.
    story.next_reconcile(timedelta(minutes=7))
    story.decide(U.POD_LOST, pod=serving, reason=f"pod {serving} is not Ready")
    story.record(ev.ServiceBound(service=NAME, endpoints=()))
    no_pods = f"no healthy pod in namespace {NAMESPACE} matches {SELECTOR}"
    story.decide(P.PODS_UNAVAILABLE, reason="NoCandidatePods", message=no_pods)
    # A new generation with an artifact URL the operator cannot use.
    story.next_reconcile(timedelta(minutes=2))
    story.generation = 4
    bad_url = "ftp://example.com/lora"
    story.record(
        ev.SpecObserved(generation=4, artifact_url=bad_url, replicas=1, scheduler_name="default", pod_selector=""),
        ev.SpecRejected(
            generation=4,
            field="spec.artifactURL",
            rule="unsupported scheme; use one of huggingface://, hf://, s3://, gcs://, gs://, tos://, /absolute/path",
            message="spec.artifactURL: unsupported scheme; use one of huggingface://, hf://, s3://, gcs://, gs://, "
            f"tos://, /absolute/path (got {bad_url})",
        ),
    )
    story.decide(
        P.SPEC_INVALID, reason="InvalidSpec", message=story.state.rejection.message if story.state.rejection else ""
    )
    # Deleted: the pod is gone by now, which counts as unloaded; the stream ends, then the finalizer goes.
    story.next_reconcile(timedelta(minutes=1))
    story.decide(P.DELETION_REQUESTED, reason="Terminating", message="unloading from every pod")
    story.decide(U.POD_GONE, pod=serving, reason="pod deleted")
    story.record(ev.Finalized())
    return story.events
