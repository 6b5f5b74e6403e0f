"""The events of a ModelAdapter's stream: what happened (facts) and what was decided (decisions).

Every payload is a frozen pydantic model with a stable `type` name and a `schema_version`; the log stores
that name and a JSON payload, never a Python import path, so modules can move without rewriting history.
A reader that meets an older `schema_version` upcasts it (`modeladapter.store.codec`).

Facts record observations and outcomes (`LoadFailed`, `PodLost`, `SpecObserved` ...). Decisions record what
the state machines concluded from them (`PhaseChanged`, `PlacementChanged`). The folded state
(`modeladapter.fsm.state.fold`) takes phases and placement states from decisions and the details (attempts,
errors, retry times, endpoints) from facts.

The envelope (`NewEvent` on the way in, `RecordedEvent` on the way out) carries the log's metadata: stream id
(the ModelAdapter's uid), version, global position, event id, time, reconcile id and observed generation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, TypeAlias
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from modeladapter.fsm.phases import Phase, PlacementState


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- facts about the spec -------------------------------------------------------------------------------------


class SpecObserved(_Payload):
    """A generation of the spec was read. Secrets (API keys, credentials) are never part of it."""

    type: Literal["SpecObserved"] = "SpecObserved"
    schema_version: Literal[1] = 1
    generation: int
    artifact_url: str
    replicas: int | None
    scheduler_name: str
    pod_selector: str
    base_model: str | None = None


class SpecRejected(_Payload):
    """A generation of the spec cannot be acted on; `field` is the JSON path, `rule` what it broke."""

    type: Literal["SpecRejected"] = "SpecRejected"
    schema_version: Literal[1] = 1
    generation: int
    field: str
    rule: str
    message: str


# --- facts about placements -----------------------------------------------------------------------------------


class PodSelected(_Payload):
    type: Literal["PodSelected"] = "PodSelected"
    schema_version: Literal[1] = 1
    pod: str
    policy: str
    reason: str = ""


class PodSwitched(_Payload):
    """The adapter moved from one pod to another (the old one exhausted its retries, or was lost)."""

    type: Literal["PodSwitched"] = "PodSwitched"
    schema_version: Literal[1] = 1
    from_pod: str
    to_pod: str
    reason: str


class LoadStarted(_Payload):
    type: Literal["LoadStarted"] = "LoadStarted"
    schema_version: Literal[1] = 1
    pod: str
    attempt: int
    artifact_url: str


class LoadSucceeded(_Payload):
    type: Literal["LoadSucceeded"] = "LoadSucceeded"
    schema_version: Literal[1] = 1
    pod: str
    attempt: int
    duration_ms: float


class LoadFailed(_Payload):
    """A load attempt failed; `retry_at` is when the pod may be tried again (None: not on this pod)."""

    type: Literal["LoadFailed"] = "LoadFailed"
    schema_version: Literal[1] = 1
    pod: str
    attempt: int
    error: str
    retriable: bool
    retry_at: AwareDatetime | None


class PlacementExhausted(_Payload):
    """The pod gets no more attempts for now; it may be reconsidered at `reconsider_at`."""

    type: Literal["PlacementExhausted"] = "PlacementExhausted"
    schema_version: Literal[1] = 1
    pod: str
    attempts: int
    cause: Literal["max-retries", "non-retriable"]
    reconsider_at: AwareDatetime


class AdapterMissing(_Payload):
    """The engine no longer lists an adapter it had loaded (evicted, or the engine restarted)."""

    type: Literal["AdapterMissing"] = "AdapterMissing"
    schema_version: Literal[1] = 1
    pod: str
    reason: str


class PodLost(_Payload):
    """The pod is gone, unhealthy, terminating, or no longer matches the selector."""

    type: Literal["PodLost"] = "PodLost"
    schema_version: Literal[1] = 1
    pod: str
    reason: str


class UnloadStarted(_Payload):
    """Unloading began; after `deadline` a failing unload is abandoned (deletion must end in bounded time)."""

    type: Literal["UnloadStarted"] = "UnloadStarted"
    schema_version: Literal[1] = 1
    pod: str
    deadline: AwareDatetime | None = None


class Unloaded(_Payload):
    """The adapter is off the pod: unloaded by the engine, never loaded there, or the pod is gone."""

    type: Literal["Unloaded"] = "Unloaded"
    schema_version: Literal[1] = 1
    pod: str
    outcome: Literal["unloaded", "not-loaded", "pod-gone", "abandoned"]


class UnloadFailed(_Payload):
    """An unload call failed; it is tried again at `retry_at`, unless it was abandoned."""

    type: Literal["UnloadFailed"] = "UnloadFailed"
    schema_version: Literal[1] = 1
    pod: str
    error: str
    abandoned: bool
    retry_at: AwareDatetime | None = None


# --- facts about the adapter as a whole -----------------------------------------------------------------------


class ServiceBound(_Payload):
    """The Service and EndpointSlice exist and list exactly these endpoint IPs."""

    type: Literal["ServiceBound"] = "ServiceBound"
    schema_version: Literal[1] = 1
    service: str
    endpoints: tuple[str, ...]


class Finalized(_Payload):
    """Every placement is unloaded and the finalizer was removed: the stream ends here."""

    type: Literal["Finalized"] = "Finalized"
    schema_version: Literal[1] = 1


# --- decisions ------------------------------------------------------------------------------------------------


class PhaseChanged(_Payload):
    """The phase machine fired `trigger`: `from_phase` None means the stream's first decision."""

    type: Literal["PhaseChanged"] = "PhaseChanged"
    schema_version: Literal[1] = 1
    from_phase: Phase | None
    to_phase: Phase
    trigger: str
    reason: str
    message: str


class PlacementChanged(_Payload):
    """The placement machine of one pod fired `trigger`: `from_state` None means a new placement."""

    type: Literal["PlacementChanged"] = "PlacementChanged"
    schema_version: Literal[1] = 1
    pod: str
    from_state: PlacementState | None
    to_state: PlacementState
    trigger: str


AdapterEvent: TypeAlias = Annotated[
    SpecObserved
    | SpecRejected
    | PodSelected
    | PodSwitched
    | LoadStarted
    | LoadSucceeded
    | LoadFailed
    | PlacementExhausted
    | AdapterMissing
    | PodLost
    | UnloadStarted
    | Unloaded
    | UnloadFailed
    | ServiceBound
    | Finalized
    | PhaseChanged
    | PlacementChanged,
    Field(discriminator="type"),
]

ADAPTER_EVENT: TypeAdapter[AdapterEvent] = TypeAdapter(AdapterEvent)

EVENT_TYPES: frozenset[str] = frozenset(
    model.model_fields["type"].default
    for model in (
        SpecObserved,
        SpecRejected,
        PodSelected,
        PodSwitched,
        LoadStarted,
        LoadSucceeded,
        LoadFailed,
        PlacementExhausted,
        AdapterMissing,
        PodLost,
        UnloadStarted,
        Unloaded,
        UnloadFailed,
        ServiceBound,
        Finalized,
        PhaseChanged,
        PlacementChanged,
    )
)


# --- envelopes ------------------------------------------------------------------------------------------------


class _Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NewEvent(_Envelope):
    """An event on its way into the log; the store assigns its version and position."""

    payload: AdapterEvent
    recorded_at: AwareDatetime
    event_id: UUID = Field(default_factory=uuid4)
    reconcile_id: str | None = None
    observed_generation: int | None = None


class RecordedEvent(_Envelope):
    """An event as read back from the log."""

    stream_id: str
    namespace: str
    name: str
    version: int = Field(ge=1)
    position: int = Field(ge=1)
    event_id: UUID
    recorded_at: AwareDatetime
    reconcile_id: str | None
    observed_generation: int | None
    payload: AdapterEvent


def stamp(
    payloads: list[AdapterEvent] | tuple[AdapterEvent, ...],
    *,
    at: datetime,
    reconcile_id: str | None = None,
    observed_generation: int | None = None,
) -> list[NewEvent]:
    """Wrap one reconcile's payloads in envelopes that share its time, reconcile id and generation."""
    return [
        NewEvent(payload=p, recorded_at=at, reconcile_id=reconcile_id, observed_generation=observed_generation)
        for p in payloads
    ]
