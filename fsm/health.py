"""Which pods may hold an adapter, and which may be given a new one. Pure: the pod arrives as a `PodView`.

* **healthy** — Ready, not terminating (no deletionTimestamp), running, with an IP. An adapter's instances
  are only ever healthy pods: an unhealthy pod leaves `status.instances` at once.
* **schedulable** — healthy, and Ready for at least the stability window (5 s by default), so that a pod that
  just came up, or flaps, is not chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

DEFAULT_STABILITY: Final = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class PodView:
    """What the policies need to know about a pod, already read out of the Kubernetes object."""

    name: str
    ip: str | None
    phase: str
    ready: bool
    ready_since: datetime | None
    """`lastTransitionTime` of the Ready condition, if it is True."""
    terminating: bool
    capacity: int | None = None
    """Adapters the pod can hold (annotation or `--max-cpu-loras`); None is unlimited."""


@dataclass(frozen=True, slots=True)
class PodHealth:
    healthy: bool
    schedulable: bool
    reason: str
    """Why the pod is not healthy or not schedulable; empty when it is both."""


def assess_pod(pod: PodView, *, now: datetime, stability: timedelta = DEFAULT_STABILITY) -> PodHealth:
    if pod.terminating:
        return PodHealth(False, False, f"pod {pod.name} is terminating")
    if pod.phase != "Running":
        return PodHealth(False, False, f"pod {pod.name} is {pod.phase}, not Running")
    if not pod.ready:
        return PodHealth(False, False, f"pod {pod.name} is not Ready")
    if not pod.ip:
        return PodHealth(False, False, f"pod {pod.name} has no IP address")
    if pod.ready_since is None:
        return PodHealth(True, False, f"pod {pod.name} has no Ready transition time")
    ready_for = now - pod.ready_since
    if ready_for < stability:
        seconds = max(ready_for.total_seconds(), 0.0)
        return PodHealth(
            True, False, f"pod {pod.name} Ready for {seconds:.1f}s, less than {stability.total_seconds():g}s"
        )
    return PodHealth(True, True, "")


def stable_since(pod: PodView, *, stability: timedelta = DEFAULT_STABILITY) -> datetime | None:
    """When a healthy but not yet stable pod becomes schedulable (for the requeue timer)."""
    if pod.ready_since is None:
        return None
    return pod.ready_since + stability
