"""Kubernetes Events on the ModelAdapter, for `kubectl describe`: what happened, aggregated, never a storm.

`events_for(...)` is pure: it turns one reconcile's events from the log into the Events a person wants to
see — `Scheduled`, `Loading`, `Loaded`, `LoadFailed`, `MaxRetriesExceeded`, `PodSwitched`, `PodLost`,
`Running`, `Unloaded`, `Failed` — with the seed documentation's wording where it has one.

`EventRecorder` writes them as core/v1 Events. An Event that repeats (same object, type, reason and
message) is not created again: its `count` and `lastTimestamp` are bumped, as client-go's correlator does.
Each adapter gets a token bucket (a burst of 25, then one every 5 seconds), so a crash-looping engine cannot
flood the API server; Events are a courtesy, and a failure to write one is logged, never raised.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from modeladapter.fsm.events import (
    AdapterEvent,
    AdapterMissing,
    LoadFailed,
    LoadStarted,
    LoadSucceeded,
    PhaseChanged,
    PlacementExhausted,
    PodLost,
    PodSelected,
    PodSwitched,
    Unloaded,
)
from modeladapter.fsm.phases import Phase
from modeladapter.fsm.state import AdapterState
from modeladapter.operator.api.conditions import format_time
from modeladapter.operator.kube.client import EVENTS, MODELADAPTERS, Kube, KubeError

log = logging.getLogger(__name__)

COMPONENT: Final = "modeladapter-operator"
BURST: Final = 25
REFILL_SECONDS: Final = 5.0
MAX_REMEMBERED: Final = 4096
MAX_MESSAGE: Final = 1024


@dataclass(frozen=True, slots=True)
class Notice:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def events_for(payloads: Sequence[AdapterEvent], after: AdapterState, *, namespace: str, name: str) -> list[Notice]:
    """The Events one reconcile's log entries deserve (`after` is the state they led to)."""
    notices: list[Notice] = []
    selected = [p.pod for p in payloads if isinstance(p, PodSelected)]
    if selected:
        notices.append(
            Notice("Normal", "Scheduled", f"ModelAdapter has selected {len(selected)} pods for scheduling: [{' '.join(selected)}]")
        )
    for payload in payloads:
        match payload:
            case LoadStarted():
                notices.append(Notice("Normal", "Loading", f"Loading adapter on pod {payload.pod} (attempt {payload.attempt})"))
            case LoadSucceeded():
                notices.append(Notice("Normal", "Loaded", f"Successfully loaded adapter on pod {payload.pod}"))
            case LoadFailed():
                then = f"; retrying at {format_time(payload.retry_at)}" if payload.retry_at else ""
                notices.append(
                    Notice("Warning", "LoadFailed", f"Failed to load adapter on pod {payload.pod} (attempt {payload.attempt}): {payload.error}{then}")
                )
            case PlacementExhausted(cause="max-retries"):
                placement = after.placement(payload.pod)
                error = placement.last_error if placement is not None else None
                notices.append(Notice("Warning", "MaxRetriesExceeded", f"Max retries exceeded for pod {payload.pod}: {error or 'unknown error'}"))
            case PodSwitched():
                notices.append(Notice("Normal", "PodSwitched", f"Switched from pod {payload.from_pod} to pod {payload.to_pod}: {payload.reason}"))
            case PodLost():
                notices.append(Notice("Warning", "PodLost", f"Pod {payload.pod} lost: {payload.reason}"))
            case AdapterMissing():
                notices.append(Notice("Warning", "PodLost", f"Adapter no longer served by pod {payload.pod}: {payload.reason}"))
            case Unloaded(outcome="unloaded"):
                notices.append(Notice("Normal", "Unloaded", f"Unloaded adapter from pod {payload.pod}"))
            case PhaseChanged(to_phase=Phase.RUNNING) if payload.from_phase is not Phase.RUNNING:
                notices.append(Notice("Normal", "Running", f"ModelAdapter {namespace}/{name} is ready"))
            case PhaseChanged(to_phase=Phase.FAILED):
                notices.append(Notice("Warning", "Failed", payload.message))
            case _:
                pass
    return notices


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class EventRecorder:
    def __init__(self, kube: Kube, *, clock: Callable[[], float] = time.monotonic, reporting_instance: str = "") -> None:
        self.kube = kube
        self.clock = clock
        self.reporting_instance = reporting_instance
        self._seen: OrderedDict[tuple[str, str, str, str], tuple[str, int]] = OrderedDict()
        self._buckets: dict[str, _Bucket] = {}
        self.dropped = 0

    async def record(self, adapter: Mapping[str, Any], notices: Sequence[Notice]) -> None:
        metadata = adapter.get("metadata") or {}
        uid = str(metadata.get("uid", ""))
        for notice in notices:
            if not self._take_token(uid):
                self.dropped += 1
                log.debug("event rate limit: dropped %s %s", notice.reason, notice.message)
                continue
            try:
                await self._write(metadata, notice)
            except KubeError as error:
                log.warning("could not record event %s on %s/%s: %s", notice.reason, metadata.get("namespace"), metadata.get("name"), error)

    async def _write(self, metadata: Mapping[str, Any], notice: Notice) -> None:
        namespace, uid = str(metadata.get("namespace", "")), str(metadata.get("uid", ""))
        message = notice.message[:MAX_MESSAGE]
        key = (uid, notice.type, notice.reason, message)
        now = format_time(datetime.now(UTC))
        seen = self._seen.get(key)
        if seen is not None:
            event_name, count = seen
            try:
                await self.kube.patch(EVENTS, namespace, event_name, {"count": count + 1, "lastTimestamp": now})
                self._remember(key, event_name, count + 1)
                return
            except KubeError:
                pass  # the Event expired or was deleted: create a new one
        event_name = f"{metadata.get('name')}.{uuid.uuid4().hex[:16]}"
        await self.kube.create(
            EVENTS,
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": event_name, "namespace": namespace},
                "involvedObject": {
                    "apiVersion": MODELADAPTERS.api_version,
                    "kind": MODELADAPTERS.kind,
                    "name": metadata.get("name"),
                    "namespace": namespace,
                    "uid": uid,
                    "resourceVersion": metadata.get("resourceVersion"),
                },
                "type": notice.type,
                "reason": notice.reason,
                "message": message,
                "source": {"component": COMPONENT},
                "reportingComponent": COMPONENT,
                "reportingInstance": self.reporting_instance,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
            },
        )
        self._remember(key, event_name, 1)

    def _remember(self, key: tuple[str, str, str, str], event_name: str, count: int) -> None:
        self._seen[key] = (event_name, count)
        self._seen.move_to_end(key)
        while len(self._seen) > MAX_REMEMBERED:
            self._seen.popitem(last=False)

    def _take_token(self, uid: str) -> bool:
        now = self.clock()
        bucket = self._buckets.setdefault(uid, _Bucket(tokens=BURST, updated=now))
        bucket.tokens = min(BURST, bucket.tokens + (now - bucket.updated) / REFILL_SECONDS)
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def forget(self, uid: str) -> None:
        """Drop an adapter's bookkeeping once it is gone."""
        self._buckets.pop(uid, None)
        for key in [k for k in self._seen if k[0] == uid]:
            del self._seen[key]
