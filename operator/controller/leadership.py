"""Leader election on a `coordination.k8s.io/v1` Lease, so that two operator replicas never act at once.

client-go's algorithm: every `retry_period` a candidate reads the Lease. It takes a Lease that does not
exist, that it already holds, or whose record has not changed for `lease_duration` (measured on this
process's own monotonic clock from when it last saw the record change, so clocks that disagree do no harm).
Writes are PUTs carrying the resourceVersion read, so two candidates racing for the same Lease get one
success and one 409. The leader renews every `retry_period`; if it cannot renew within `renew_deadline`, it
has lost the lease and must stop acting (`lost` is set), before anyone else can take over.

`on_change`, when set, is told each change of leadership (False as the campaign starts, True when the Lease is
acquired, False when it is lost or released), for `leader_election_master_status`.

`renewTime` and `acquireTime` are MicroTime with exactly six fractional digits: the API server refuses
anything else (`+00:00`, no fraction), which is a classic way for a Python client to lose its lease.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from modeladapter.operator.kube.client import LEASES, Conflict, Kube, KubeError, NotFound, Raw

log = logging.getLogger(__name__)


def micro_time(moment: datetime) -> str:
    """A MicroTime: RFC 3339 in UTC with exactly six fractional digits."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("leader election needs retry_period < renew_deadline < lease_duration")
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.monotonic = monotonic
        self.wall = wall
        self.leading = asyncio.Event()
        self.lost = asyncio.Event()
        self._observed: tuple[str, float] | None = None
        """(the lease record as last seen, when this process saw it change)."""
        self._last_renewed = 0.0
        self.on_change: Callable[[bool], None] | None = None
        """Told whether this process leads, at the start of the campaign and at each change."""

    async def run(self) -> None:
        """Campaign until elected, then renew until the lease is lost (which returns)."""
        self._tell(self.leading.is_set())
        while True:
            # One attempt may not outlast the time left to renew: a hanging API server must cost the lease
            # on time, not after the HTTP client's own, longer, timeout.
            budget = self.retry_period
            if self.leading.is_set():
                budget = max(
                    min(self.renew_deadline - (self.monotonic() - self._last_renewed), self.renew_deadline), 0.01
                )
            try:
                async with asyncio.timeout(budget):
                    acquired = await self._try_acquire_or_renew()
            except (KubeError, TimeoutError) as error:
                log.warning("lease %s/%s: %s", self.namespace, self.name, error or "no answer in time")
                acquired = False
            now = self.monotonic()
            if acquired:
                self._last_renewed = now
                if not self.leading.is_set():
                    log.info("lease %s/%s acquired by %s", self.namespace, self.name, self.identity)
                    self.leading.set()
                    self._tell(True)
            elif self.leading.is_set() and now - self._last_renewed > self.renew_deadline:
                log.error(
                    "lease %s/%s lost by %s: could not renew for %.1fs",
                    self.namespace,
                    self.name,
                    self.identity,
                    now - self._last_renewed,
                )
                self.leading.clear()
                self._tell(False)
                self.lost.set()
                return
            await asyncio.sleep(self.retry_period)

    async def release(self) -> None:
        """Give the lease up on a clean shutdown, so a standby takes over at once instead of waiting it out."""
        if not self.leading.is_set():
            return
        try:
            lease = await self.kube.get(LEASES, self.namespace, self.name)
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"]["holderIdentity"] = ""
            lease["spec"]["leaseDurationSeconds"] = 1
            lease["spec"]["renewTime"] = micro_time(self.wall())
            await self.kube.replace(LEASES, self.namespace, self.name, lease)
        except KubeError as error:
            log.warning("lease %s/%s not released: %s", self.namespace, self.name, error)
        finally:
            self.leading.clear()
            self._tell(False)

    def _tell(self, leading: bool) -> None:
        if self.on_change is not None:
            self.on_change(leading)

    async def _try_acquire_or_renew(self) -> bool:
        now_wall = micro_time(self.wall())
        try:
            lease = await self.kube.get(LEASES, self.namespace, self.name)
        except NotFound:
            try:
                await self.kube.create(LEASES, self.namespace, self._new_lease(now_wall))
            except (Conflict, KubeError) as error:
                log.info(
                    "lease %s/%s: another candidate created it first (%s)", self.namespace, self.name, error.reason
                )
                return False
            return True
        spec: dict[str, Any] = lease.setdefault("spec", {})
        holder = spec.get("holderIdentity") or ""
        record = f"{holder}|{spec.get('renewTime')}|{spec.get('leaseTransitions')}"
        now = self.monotonic()
        if self._observed is None or self._observed[0] != record:
            self._observed = (record, now)
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        expired = now - self._observed[1] > duration
        if holder and holder != self.identity and not expired:
            return False
        if holder != self.identity:
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
            spec["acquireTime"] = now_wall
        spec["holderIdentity"] = self.identity
        spec["leaseDurationSeconds"] = int(self.lease_duration)
        spec["renewTime"] = now_wall
        try:
            await self.kube.replace(LEASES, self.namespace, self.name, lease)
        except Conflict:
            return False  # someone else wrote it between our read and our write
        return True

    def _new_lease(self, now: str) -> Raw:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.lease_duration),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
