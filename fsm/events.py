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
    # Attribute docstrings become field descriptions (the event catalogue, docs/events.md, shows them).
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


# --- facts about the spec -------------------------------------------------------------------------------------


class SpecObserved(_Payload):
    """A generation of the spec was read. Secrets (API keys, credentials) are never part of it."""

    type: Literal["SpecObserved"] = "SpecObserved"
    schema_version: Literal[1] = 1
    generation: int
    """`metadata.generation` of the ModelAdapter that was read."""
    artifact_url: str
    """`spec.artifactURL` (for an invalid spec, as written and cut to 2048 characters)."""
    replicas: int | None
    """`spec.replicas`; None when it is omitted (every healthy matching pod)."""
    scheduler_name: str
    """`spec.schedulerName` as written; `default` when it is omitted."""
    pod_selector: str
    """`spec.podSelector` in label-selector syntax (`a=b,c in (d,e),!f`); empty for an invalid spec."""
    base_model: str | None = None
    """`spec.baseModel`, if set."""
    api_key_secret: str | None = None
    """`spec.apiKeySecretRef.name`, if set: where the API key is, never the key (an adapter deleted while the
    operator was away is unloaded with it)."""
    api_key_secret_key: str | None = None
    """`spec.apiKeySecretRef.key`, with `api_key_secret`."""


class SpecRejected(_Payload):
    """A generation of the spec cannot be acted on; `field` is the JSON path, `rule` what it broke."""

    type: Literal["SpecRejected"] = "SpecRejected"
    schema_version: Literal[1] = 1
    generation: int
    """The generation whose spec was rejected."""
    field: str
    """The offending field's path, e.g. `spec.artifactURL` or `metadata.name`."""
    rule: str
    """The rule it breaks, in words."""
    message: str
    """`<field>: <rule> (got <value>)`, as the condition shows it."""


# --- facts about placements -----------------------------------------------------------------------------------


class PodSelected(_Payload):
    """A scheduling policy chose a pod for the adapter (a new placement, or a lost one re-assigned)."""

    type: Literal["PodSelected"] = "PodSelected"
    schema_version: Literal[1] = 1
    pod: str
    """The chosen pod, in the adapter's namespace."""
    policy: str
    """The policy that chose it: `least-adapters`, `bin-pack` or `random`."""
    reason: str = ""
    """Why this pod: the policy's count, or what it replaces (`MaxRetriesExceeded: ...`, `PodLost: ...`)."""


class PodSwitched(_Payload):
    """The adapter moved from one pod to another (the old one exhausted its retries, or was lost)."""

    type: Literal["PodSwitched"] = "PodSwitched"
    schema_version: Literal[1] = 1
    from_pod: str
    """The pod given up on."""
    to_pod: str
    """The pod chosen instead."""
    reason: str
    """Why the old pod was given up on, e.g. `MaxRetriesExceeded: <last error>` or `PodLost: <why>`."""


class LoadStarted(_Payload):
    """A load attempt on a pod begins; the operator appends it before it calls the engine (write-ahead)."""

    type: Literal["LoadStarted"] = "LoadStarted"
    schema_version: Literal[1] = 1
    pod: str
    """The pod whose engine is asked to load the adapter."""
    attempt: int
    """1-based attempt on this pod, counted since it was assigned, last held the adapter, or was lost."""
    artifact_url: str
    """The artifact being loaded."""
    replacing: str | None = None
    """An update: the artifact the pod served before. The engine unloads that version first (never swapping
    weights in place), and forgets the prefixes it cached with it when the new one comes from the same path."""


class LoadSucceeded(_Payload):
    """The engine accepted the load and its `/v1/models` lists the adapter from the right artifact."""

    type: Literal["LoadSucceeded"] = "LoadSucceeded"
    schema_version: Literal[1] = 1
    pod: str
    """The pod whose engine now serves the adapter."""
    attempt: int
    """The attempt that succeeded."""
    duration_ms: float
    """Load call and verification, in milliseconds; 0 when a load cut short by a restart had landed."""


class LoadFailed(_Payload):
    """A load attempt failed; `retry_at` is when the pod may be tried again (None: not on this pod)."""

    type: Literal["LoadFailed"] = "LoadFailed"
    schema_version: Literal[1] = 1
    pod: str
    """The pod whose engine did not load the adapter."""
    attempt: int
    """The attempt that failed."""
    error: str
    """The engine's or the network's error, with secret values masked."""
    retriable: bool
    """Whether the failure is worth another attempt on this pod (`modeladapter.fsm.retriable`)."""
    retry_at: AwareDatetime | None
    """When the backoff ends; None for a failure that is not retriable."""


class PlacementExhausted(_Payload):
    """The pod gets no more attempts for now; it may be reconsidered at `reconsider_at`."""

    type: Literal["PlacementExhausted"] = "PlacementExhausted"
    schema_version: Literal[1] = 1
    pod: str
    """The pod given up on."""
    attempts: int
    """Load attempts made on it."""
    cause: Literal["max-retries", "non-retriable"]
    """`max-retries`: the attempts ran out; `non-retriable`: the error rules this pod out."""
    reconsider_at: AwareDatetime
    """When the pod may get a fresh set of attempts (the backoff's cool-down later)."""


class AdapterMissing(_Payload):
    """The engine no longer lists an adapter it had loaded (unloaded by another client, or the engine restarted)."""

    type: Literal["AdapterMissing"] = "AdapterMissing"
    schema_version: Literal[1] = 1
    pod: str
    """The pod whose engine was asked."""
    reason: str
    """What verification found: not listed, another artifact under this name, or the engine unreachable."""


class PodLost(_Payload):
    """The pod is gone, unhealthy, terminating, or no longer matches the selector."""

    type: Literal["PodLost"] = "PodLost"
    schema_version: Literal[1] = 1
    pod: str
    """The pod that was lost."""
    reason: str
    """Why, e.g. `pod deleted` or `pod <name> is not Ready`."""


class UnloadStarted(_Payload):
    """Unloading began; after `deadline` a failing unload is abandoned (deletion must end in bounded time)."""

    type: Literal["UnloadStarted"] = "UnloadStarted"
    schema_version: Literal[1] = 1
    pod: str
    """The pod the adapter is to be unloaded from."""
    deadline: AwareDatetime | None = None
    """After this instant a failing unload is abandoned; None: no deadline."""


class Unloaded(_Payload):
    """The adapter is off the pod: unloaded by the engine, never loaded there, or the pod is gone."""

    type: Literal["Unloaded"] = "Unloaded"
    schema_version: Literal[1] = 1
    pod: str
    """The pod that no longer holds the adapter."""
    outcome: Literal["unloaded", "not-loaded", "pod-gone", "abandoned"]
    """`unloaded` (by the engine; a 404 counts), `not-loaded` (never tried), `pod-gone` or `abandoned`."""


class UnloadFailed(_Payload):
    """An unload call failed; it is tried again at `retry_at`, unless it was abandoned."""

    type: Literal["UnloadFailed"] = "UnloadFailed"
    schema_version: Literal[1] = 1
    pod: str
    """The pod whose unload failed."""
    error: str
    """The engine's or the network's error, with secret values masked."""
    abandoned: bool
    """True when the deadline had passed and the pod is given up on (an `Unloaded` follows)."""
    retry_at: AwareDatetime | None = None
    """When the unload is tried again; None when it was abandoned."""


# --- facts about an update of the artifact --------------------------------------------------------------------


class RolloutStarted(_Payload):
    """`spec.artifactURL` changed while pods serve another artifact: they are updated pod by pod."""

    type: Literal["RolloutStarted"] = "RolloutStarted"
    schema_version: Literal[1] = 1
    from_artifacts: tuple[str, ...]
    """The artifacts the pods served when the rollout began (usually one: the previous version)."""
    to_artifact: str
    """The artifact every instance is to serve."""
    instances: int
    """Instances serving when it began."""
    max_unavailable: int
    """`spec.updateStrategy.maxUnavailable`: instances that may be out for their update at once."""
    max_surge: int
    """`spec.updateStrategy.maxSurge`: extra pods the new version may be loaded on first (with `replicas`)."""
    rollback: bool = False
    """The spec went back to an artifact an unfinished rollout was taking the pods from."""


class InstanceUpdated(_Payload):
    """One instance of a rollout serves the new artifact: reloaded in place, or surged onto another pod."""

    type: Literal["InstanceUpdated"] = "InstanceUpdated"
    schema_version: Literal[1] = 1
    pod: str
    """The pod that serves the new artifact."""
    artifact: str
    """The new artifact."""
    previous: str
    """The artifact the replaced instance served."""
    replaced_pod: str | None = None
    """A surge: the pod whose instance of the older artifact retires in its stead. None: reloaded in place."""


class RolloutHalted(_Payload):
    """The new artifact failed on a pod: no other pod is touched until it loads there or the spec changes."""

    type: Literal["RolloutHalted"] = "RolloutHalted"
    schema_version: Literal[1] = 1
    pod: str
    """The pod on which the new artifact failed."""
    error: str
    """Its error, with secret values masked."""
    serving_old: int
    """Instances that keep serving an older artifact meanwhile."""


class RolloutResumed(_Payload):
    """The pod a rollout halted on now serves the new artifact, or has left: the rollout goes on."""

    type: Literal["RolloutResumed"] = "RolloutResumed"
    schema_version: Literal[1] = 1
    pod: str
    """The pod the rollout halted on."""
    left: bool = False
    """True: its placement is gone (the pod was deleted, or can no longer take the adapter), so nothing could
    lift the halt there; the next pod tries the new artifact afresh, and halts the rollout again if it fails."""


class RolloutFinished(_Payload):
    """No instance serves an older artifact any more."""

    type: Literal["RolloutFinished"] = "RolloutFinished"
    schema_version: Literal[1] = 1
    artifact: str
    """The artifact every instance serves."""
    instances: int
    """Instances serving it."""
    rolled_back: bool = False
    """The spec went back to an artifact the pods served before the rollout reached them."""


# --- facts about the adapter as a whole -----------------------------------------------------------------------


class ServiceBound(_Payload):
    """The Service and EndpointSlice exist and list exactly these endpoint IPs."""

    type: Literal["ServiceBound"] = "ServiceBound"
    schema_version: Literal[1] = 1
    service: str
    """The name of the Service and of its EndpointSlice: the ModelAdapter's name."""
    endpoints: tuple[str, ...]
    """The pod IPs the EndpointSlice lists, sorted; empty when no instance is left."""


class OwnedObjectRestored(_Payload):
    """Someone else deleted or edited the adapter's Service, EndpointSlice or HTTPRoute; the operator put it back."""

    type: Literal["OwnedObjectRestored"] = "OwnedObjectRestored"
    schema_version: Literal[1] = 1
    kind: Literal["Service", "EndpointSlice", "HTTPRoute"]
    """Which of the objects the adapter owns (the HTTPRoute only when the operator publishes one)."""
    name: str
    """The object's name: the ModelAdapter's."""
    change: Literal["deleted", "edited"]
    """`deleted`: it was gone and was created again; `edited`: what the operator owns in it (ports, labels,
    endpoints) was changed, and is written back."""


class Finalized(_Payload):
    """Every placement is unloaded (or the object is gone): the stream ends here; the finalizer goes next."""

    type: Literal["Finalized"] = "Finalized"
    schema_version: Literal[1] = 1


# --- decisions ------------------------------------------------------------------------------------------------


class PhaseChanged(_Payload):
    """The phase machine fired `trigger`: `from_phase` None means the stream's first decision."""

    type: Literal["PhaseChanged"] = "PhaseChanged"
    schema_version: Literal[1] = 1
    from_phase: Phase | None
    """The phase before; None for the stream's first decision."""
    to_phase: Phase
    """The phase after; the same as `from_phase` on a reflexive edge."""
    trigger: str
    """The phase trigger that fired, e.g. `pods_selected`."""
    reason: str
    """CamelCase reason, shown as the condition's reason, e.g. `NoCandidatePods`."""
    message: str
    """The human-readable explanation, shown as the condition's message."""


class PlacementChanged(_Payload):
    """The placement machine of one pod fired `trigger`: `from_state` None means a new placement."""

    type: Literal["PlacementChanged"] = "PlacementChanged"
    schema_version: Literal[1] = 1
    pod: str
    """The pod whose placement moved."""
    from_state: PlacementState | None
    """The placement's state before; None for a new placement."""
    to_state: PlacementState
    """The state after; `Unloaded` removes the placement from the folded state."""
    trigger: str
    """The placement trigger that fired, e.g. `load_failed`."""


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
    | RolloutStarted
    | InstanceUpdated
    | RolloutHalted
    | RolloutResumed
    | RolloutFinished
    | ServiceBound
    | OwnedObjectRestored
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
        RolloutStarted,
        InstanceUpdated,
        RolloutHalted,
        RolloutResumed,
        RolloutFinished,
        ServiceBound,
        OwnedObjectRestored,
        Finalized,
        PhaseChanged,
        PlacementChanged,
    )
)


# --- envelopes ------------------------------------------------------------------------------------------------


class _Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class NewEvent(_Envelope):
    """An event on its way into the log; the store assigns its version and position."""

    payload: AdapterEvent
    """The event itself."""
    recorded_at: AwareDatetime
    """When the reconcile that recorded it observed the world; shared by its events."""
    event_id: UUID = Field(default_factory=uuid4)
    """Unique id of the event."""
    reconcile_id: str | None = None
    """The reconcile that recorded it; the operator's log lines carry the same id."""
    observed_generation: int | None = None
    """`metadata.generation` of the ModelAdapter when the event was recorded."""


class RecordedEvent(_Envelope):
    """An event as read back from the log."""

    stream_id: str
    """The stream: the ModelAdapter's `metadata.uid`."""
    namespace: str
    """The ModelAdapter's namespace (recorded with the stream)."""
    name: str
    """The ModelAdapter's name (recorded with the stream; names are reused, uids are not)."""
    version: int = Field(ge=1)
    """The event's place in its stream: 1, 2, 3 ... without gaps."""
    position: int = Field(ge=1)
    """The event's place in the whole log, across streams: gap-free, in commit order."""
    event_id: UUID
    """Unique id of the event."""
    recorded_at: AwareDatetime
    """When the reconcile that recorded it observed the world; shared by its events."""
    reconcile_id: str | None
    """The reconcile that recorded it; the operator's log lines carry the same id."""
    observed_generation: int | None
    """`metadata.generation` of the ModelAdapter when the event was recorded."""
    payload: AdapterEvent
    """The event itself."""


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
