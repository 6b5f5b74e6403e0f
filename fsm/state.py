"""The state of one ModelAdapter, computed from its events alone.

`fold(events)` is the only way state comes into being: the operator folds the stream on every reconcile
(and after every restart or failover), the CLI folds a prefix of it to replay the past. Nothing here reads a
clock or remembers anything between calls.

Phases and placement states come from decisions (`PhaseChanged`, `PlacementChanged`); attempts, errors, retry
times, the spec and the Service's endpoints come from facts. A placement that reaches `Unloaded` is finished
and leaves the state, so pod churn does not grow it without bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime

from modeladapter.fsm.events import (
    AdapterEvent,
    AdapterMissing,
    Finalized,
    InstanceUpdated,
    LoadFailed,
    LoadStarted,
    LoadSucceeded,
    PhaseChanged,
    PlacementChanged,
    PlacementExhausted,
    PodLost,
    PodSwitched,
    RecordedEvent,
    RolloutFinished,
    RolloutHalted,
    RolloutResumed,
    RolloutStarted,
    ServiceBound,
    SpecObserved,
    SpecRejected,
    UnloadFailed,
    UnloadStarted,
)
from modeladapter.fsm.phases import ACTIVE_PLACEMENT_STATES, Phase, PlacementState


class FoldError(ValueError):
    """The events do not form one contiguous stream (wrong stream, or a version is missing or repeated)."""


@dataclass(frozen=True, slots=True)
class Placement:
    """The adapter on one pod."""

    pod: str
    state: PlacementState
    since: datetime
    attempts: int = 0
    """Load attempts since the placement was (re)assigned, last held the adapter, or was lost."""
    next_retry_at: datetime | None = None
    """Backoff: the next attempt is due. Exhausted: the pod may be reconsidered. Unloading: the next try."""
    last_error: str | None = None
    artifact_url: str | None = None
    """The artifact of the latest load attempt on this pod."""
    unload_deadline: datetime | None = None
    """Unloading: a failing unload is abandoned after this instant."""
    replacing: str | None = None
    """An update in progress on this pod: the artifact it served before (until the new one is loaded)."""

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_PLACEMENT_STATES


@dataclass(frozen=True, slots=True)
class Rollout:
    """The latest update of the artifact: from what, to what, and where it stands."""

    to_artifact: str
    from_artifacts: tuple[str, ...]
    started_at: datetime
    max_unavailable: int
    max_surge: int
    halted_on: str | None = None
    """The pod the new artifact failed on, while the rollout is halted."""
    halted_error: str | None = None
    finished_at: datetime | None = None
    rolled_back: bool = False
    rollback: bool = False
    """It started by going back to an artifact the previous rollout was taking the pods from."""
    finished_artifact: str | None = None
    """The artifact every instance served when it finished (the old one, after a rollback)."""
    progressed_at: datetime | None = None
    """When it last moved: started, a pod updated, resumed."""

    @property
    def in_progress(self) -> bool:
        return self.finished_at is None


@dataclass(frozen=True, slots=True)
class AdapterState:
    """Everything the log knows about one ModelAdapter at one version."""

    stream_id: str | None = None
    namespace: str | None = None
    name: str | None = None
    version: int = 0
    position: int = 0
    phase: Phase | None = None
    """None until the first decision (the machines' `New` state)."""
    phase_since: datetime | None = None
    phase_trigger: str | None = None
    phase_reason: str | None = None
    phase_message: str | None = None
    spec: SpecObserved | None = None
    rejection: SpecRejected | None = None
    placements: tuple[Placement, ...] = ()
    endpoints: tuple[str, ...] | None = None
    """The IPs the Service's EndpointSlice lists; None until a Service was bound."""
    finalized: bool = False
    load_failures: int = 0
    pod_switches: int = 0
    rollout: Rollout | None = None
    """The latest update of the artifact; None until the first."""

    @property
    def generation(self) -> int:
        return self.spec.generation if self.spec is not None else 0

    @property
    def spec_rejected(self) -> bool:
        """The latest observed generation was rejected."""
        return self.rejection is not None and self.rejection.generation >= self.generation

    @property
    def instances(self) -> tuple[str, ...]:
        """Pods on which the adapter is verified loaded, in the order they were selected."""
        return tuple(p.pod for p in self.placements if p.state is PlacementState.LOADED)

    @property
    def selected_pods(self) -> tuple[str, ...]:
        """Pods that hold, or are on their way to hold, the adapter."""
        return tuple(p.pod for p in self.placements if p.active)

    def placement(self, pod: str) -> Placement | None:
        for p in self.placements:
            if p.pod == pod:
                return p
        return None


@dataclass(slots=True)
class _MutablePlacement:
    pod: str
    state: PlacementState
    since: datetime
    attempts: int = 0
    next_retry_at: datetime | None = None
    last_error: str | None = None
    artifact_url: str | None = None
    unload_deadline: datetime | None = None
    replacing: str | None = None

    def freeze(self) -> Placement:
        return Placement(**{f.name: getattr(self, f.name) for f in fields(Placement)})

    @classmethod
    def thaw(cls, placement: Placement) -> _MutablePlacement:
        return cls(**{f.name: getattr(placement, f.name) for f in fields(Placement)})


# Entering these states starts a fresh count of attempts.
_RESETS_ATTEMPTS = frozenset({PlacementState.ASSIGNED, PlacementState.LOADED, PlacementState.LOST})


@dataclass(slots=True)
class _Folder:
    """A mutable accumulator; `AdapterState` is frozen, and copying it per event would be slow."""

    stream_id: str | None
    namespace: str | None
    name: str | None
    version: int
    position: int
    phase: Phase | None
    phase_since: datetime | None
    phase_trigger: str | None
    phase_reason: str | None
    phase_message: str | None
    spec: SpecObserved | None
    rejection: SpecRejected | None
    placements: dict[str, _MutablePlacement] = field(default_factory=dict)
    endpoints: tuple[str, ...] | None = None
    finalized: bool = False
    load_failures: int = 0
    pod_switches: int = 0
    rollout: Rollout | None = None

    @classmethod
    def start(cls, state: AdapterState) -> _Folder:
        values = {f.name: getattr(state, f.name) for f in fields(AdapterState)}
        values["placements"] = {p.pod: _MutablePlacement.thaw(p) for p in state.placements}
        return cls(**values)

    def freeze(self) -> AdapterState:
        values = {f.name: getattr(self, f.name) for f in fields(AdapterState)}
        values["placements"] = tuple(p.freeze() for p in self.placements.values())
        return AdapterState(**values)

    def record(self, event: RecordedEvent) -> None:
        if self.stream_id is None:
            self.stream_id, self.namespace, self.name = event.stream_id, event.namespace, event.name
        elif event.stream_id != self.stream_id:
            raise FoldError(f"event of stream {event.stream_id} folded into stream {self.stream_id}")
        if event.version != self.version + 1:
            raise FoldError(f"stream {event.stream_id}: expected version {self.version + 1}, got {event.version}")
        self.apply(event.payload, event.recorded_at)
        self.version = event.version
        self.position = event.position

    def apply(self, payload: AdapterEvent, at: datetime) -> None:
        match payload:
            case PhaseChanged():
                self.phase = payload.to_phase
                self.phase_since = at
                self.phase_trigger = payload.trigger
                self.phase_reason = payload.reason
                self.phase_message = payload.message
            case PlacementChanged():
                self._placement_changed(payload, at)
            case SpecObserved():
                self.spec = payload
            case SpecRejected():
                self.rejection = payload
            case LoadStarted():
                placement = self._existing(payload.pod)
                placement.attempts = payload.attempt
                placement.next_retry_at = None
                placement.artifact_url = payload.artifact_url
                placement.replacing = payload.replacing
            case LoadSucceeded():
                self._existing(payload.pod).last_error = None
            case LoadFailed():
                placement = self._existing(payload.pod)
                placement.last_error = payload.error
                placement.next_retry_at = payload.retry_at
                self.load_failures += 1
            case PlacementExhausted():
                self._existing(payload.pod).next_retry_at = payload.reconsider_at
            case AdapterMissing() | PodLost():
                if (placement_or_none := self.placements.get(payload.pod)) is not None:
                    placement_or_none.last_error = payload.reason
            case UnloadStarted():
                placement = self._existing(payload.pod)
                placement.unload_deadline = payload.deadline
                placement.next_retry_at = None
            case UnloadFailed():
                placement = self._existing(payload.pod)
                placement.last_error = payload.error
                placement.next_retry_at = payload.retry_at
            case PodSwitched():
                self.pod_switches += 1
            case RolloutStarted():
                self.rollout = Rollout(
                    to_artifact=payload.to_artifact,
                    from_artifacts=payload.from_artifacts,
                    started_at=at,
                    max_unavailable=payload.max_unavailable,
                    max_surge=payload.max_surge,
                    rollback=payload.rollback,
                    progressed_at=at,
                )
            case InstanceUpdated() if self.rollout is not None:
                self.rollout = replace(self.rollout, progressed_at=at)
            case RolloutHalted() if self.rollout is not None:
                self.rollout = replace(self.rollout, halted_on=payload.pod, halted_error=payload.error)
            case RolloutResumed() if self.rollout is not None:
                self.rollout = replace(self.rollout, halted_on=None, halted_error=None, progressed_at=at)
            case RolloutFinished() if self.rollout is not None:
                self.rollout = replace(
                    self.rollout,
                    halted_on=None,
                    halted_error=None,
                    finished_at=at,
                    rolled_back=payload.rolled_back,
                    finished_artifact=payload.artifact,
                )
            case ServiceBound():
                self.endpoints = payload.endpoints
            case Finalized():
                self.finalized = True
            case _:
                # PodSelected and Unloaded are facts whose effect on state the matching PlacementChanged carries;
                # OwnedObjectRestored changes nothing the operator decides with.
                pass

    def _placement_changed(self, payload: PlacementChanged, at: datetime) -> None:
        if payload.to_state is PlacementState.UNLOADED:
            self.placements.pop(payload.pod, None)
            return
        placement = self.placements.get(payload.pod)
        if placement is None:
            placement = self.placements[payload.pod] = _MutablePlacement(
                pod=payload.pod, state=payload.to_state, since=at
            )
        if placement.state is payload.to_state and payload.from_state is not None:
            return  # a reflexive edge (another failed unload): the placement has been in this state since before
        placement.state = payload.to_state
        placement.since = at
        if payload.to_state in _RESETS_ATTEMPTS:
            placement.attempts = 0
            placement.next_retry_at = None
        if payload.to_state is PlacementState.LOADED:
            placement.replacing = None
        if payload.to_state is PlacementState.ASSIGNED:
            placement.last_error = None

    def _existing(self, pod: str) -> _MutablePlacement:
        placement = self.placements.get(pod)
        if placement is None:
            raise FoldError(f"stream {self.stream_id}: event for pod {pod!r} which has no placement")
        return placement


def fold(events: Iterable[RecordedEvent], state: AdapterState | None = None) -> AdapterState:
    """The state after `events`, starting from `state` (an empty stream by default).

    `fold(rest, fold(prefix)) == fold(prefix + rest)`; replaying the past is folding a prefix.
    """
    folder = _Folder.start(state if state is not None else AdapterState())
    for event in events:
        folder.record(event)
    return folder.freeze()


def advance(state: AdapterState, payloads: Sequence[AdapterEvent], *, at: datetime) -> AdapterState:
    """The state after payloads not yet recorded, as if each were appended at `at`.

    A reconcile decides in several steps before its single append; each step sees the previous ones.
    """
    folder = _Folder.start(state)
    for payload in payloads:
        folder.apply(payload, at)
        folder.version += 1
    return folder.freeze()
