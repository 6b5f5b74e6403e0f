"""Events to rows and back, with upcasting of older payload versions on read.

A row keeps the payload's stable `type` name and `schema_version` in columns and the rest of the payload as
JSON. Reading validates the payload against the current model of that type; a row written by an older
schema version first goes through the upcasters registered for it, one version at a time, so events are
never rewritten in place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from modeladapter.fsm.events import ADAPTER_EVENT, AdapterEvent, NewEvent, RecordedEvent
from modeladapter.store.errors import CorruptEvent

JSONObject = dict[str, Any]
Upcaster = Callable[[JSONObject], JSONObject]
"""Turns the payload of (type, version n) into the payload of (type, version n + 1)."""


@dataclass(frozen=True, slots=True)
class NotJSON:
    """What a read-only engine hands over for a stored payload that is not JSON (`store.readonly`)."""

    error: str


@dataclass(frozen=True, slots=True)
class Codec:
    upcasters: Mapping[tuple[str, int], Upcaster] = field(default_factory=dict)
    """Keyed by (event type, the schema version the upcaster reads)."""

    def encode(self, event: NewEvent) -> tuple[str, int, JSONObject]:
        """The (type, schema_version, payload JSON) of an event."""
        payload = event.payload.model_dump(mode="json", exclude={"type", "schema_version"})
        return event.payload.type, event.payload.schema_version, payload

    def decode_payload(
        self, *, stream_id: str, version: int, type_: str, schema_version: int, payload: Any
    ) -> AdapterEvent:
        if isinstance(payload, NotJSON):
            raise CorruptEvent(stream_id, version, f"payload is not JSON ({payload.error})")
        if not isinstance(payload, dict):
            raise CorruptEvent(stream_id, version, f"payload is {type(payload).__name__}, not a JSON object")
        data: JSONObject = dict(payload)
        current = schema_version
        while (upcast := self.upcasters.get((type_, current))) is not None:
            try:
                data = upcast(data)
            except Exception as error:  # an upcaster's failure is the stored event's problem, not ours
                raise CorruptEvent(stream_id, version, f"upcasting {type_} v{current} failed: {error}") from error
            current += 1
        try:
            return ADAPTER_EVENT.validate_python({**data, "type": type_, "schema_version": current})
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in problem['loc']) or '<payload>'}: {problem['msg']}"
                for problem in error.errors(include_url=False)
            )
            raise CorruptEvent(stream_id, version, f"{type_} v{current}: {problems}") from None

    def decode(self, row: Mapping[str, Any]) -> RecordedEvent:
        stream_id, version = str(row["stream_id"]), int(row["version"])
        payload = self.decode_payload(
            stream_id=stream_id,
            version=version,
            type_=str(row["type"]),
            schema_version=int(row["schema_version"]),
            payload=row["payload"],
        )
        event_id = row["event_id"]
        return RecordedEvent(
            stream_id=stream_id,
            namespace=str(row["namespace"]),
            name=str(row["name"]),
            version=version,
            position=int(row["position"]),
            event_id=event_id if isinstance(event_id, UUID) else UUID(str(event_id)),
            recorded_at=row["recorded_at"],
            reconcile_id=row["reconcile_id"],
            observed_generation=row["observed_generation"],
            payload=payload,
        )


DEFAULT_CODEC = Codec()
