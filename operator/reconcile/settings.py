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
    http_route_parent: tuple[str | None, str] | None = None
    """(namespace or None, name) of the Gateway each adapter's HTTPRoute attaches to; None: no HTTPRoutes."""
