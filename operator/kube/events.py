"""Kubernetes Events on a ModelAdapter, for `kubectl describe`: aggregated, never a storm.

`EventRecorder` writes `Notice`s (`modeladapter.operator.reconcile.notices` says which a reconcile deserves) as
core/v1 Events. An Event that repeats (same object, type, reason and message) is not created again: its `count`
and `lastTimestamp` are bumped, as client-go's correlator does. Each adapter gets a token bucket (a burst of 25,
then one every 5 seconds), so a crash-looping engine cannot flood the API server; Events are a courtesy, and a
failure to write one is logged, never raised.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from modeladapter.operator.api.conditions import format_time
from modeladapter.operator.api.view import AdapterRef
from modeladapter.operator.kube.client import EVENTS, MODELADAPTERS, KubeApi, KubeError

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


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class EventRecorder:
    def __init__(
        self, kube: KubeApi, *, clock: Callable[[], float] = time.monotonic, reporting_instance: str = ""
    ) -> None:
        self.kube = kube
        self.clock = clock
        self.reporting_instance = reporting_instance
        self._seen: OrderedDict[tuple[str, str, str, str], tuple[str, int]] = OrderedDict()
        self._buckets: dict[str, _Bucket] = {}
        self.dropped = 0

    async def record(self, ref: AdapterRef, notices: Sequence[Notice]) -> None:
        uid = ref.uid
        for notice in notices:
            if not self._take_token(uid):
                self.dropped += 1
                log.debug("event rate limit: dropped %s %s", notice.reason, notice.message)
                continue
            try:
                await self._write(ref, notice)
            except KubeError as error:
                log.warning("could not record event %s on %s: %s", notice.reason, ref.key, error)

    async def _write(self, ref: AdapterRef, notice: Notice) -> None:
        namespace, uid = ref.namespace, ref.uid
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
        event_name = f"{ref.name}.{uuid.uuid4().hex[:16]}"
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
                    "name": ref.name,
                    "namespace": namespace,
                    "uid": uid,
                    "resourceVersion": ref.resource_version or None,
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
