"""How a reconcile behaves: the planner's settings, and the few only the operator's side needs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from modeladapter.fsm.observations import PlanSettings


@dataclass(frozen=True, slots=True)
class ReconcileSettings(PlanSettings):
    """`PlanSettings` (stability window, backoff, unload timeout, verify interval), and:"""

    secret_retry: timedelta = timedelta(seconds=15)
    """How soon an adapter whose Secret is missing looks again."""
    runtime_sidecar: bool = False
    """Load through the AIBrix runtime sidecar where a pod has one."""
    drain: timedelta = timedelta(0)
    """After a pod leaves the EndpointSlice, wait this long before its engine stops serving the adapter (an
    update's unload, a surplus unload), so that gateways, which follow the slice a moment later, stop sending
    it requests first. The operator's own default is `--drain-seconds`."""
    http_route_parent: tuple[str | None, str] | None = None
    """(namespace or None, name) of the Gateway each adapter's HTTPRoute attaches to; None: no HTTPRoutes."""
