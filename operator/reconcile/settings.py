"""How a reconcile behaves: the planner's settings, and what only the operator's side needs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from modeladapter.fsm.backoff import BackoffPolicy
from modeladapter.fsm.observations import PlanSettings


@dataclass(frozen=True, slots=True)
class ReconcileSettings:
    stability_window: timedelta = timedelta(seconds=5)
    backoff: BackoffPolicy = BackoffPolicy()
    verify_interval: timedelta = timedelta(seconds=30)
    unload_timeout: timedelta = timedelta(seconds=60)
    """How long deletion waits for a failing unload before it gives up on that pod."""
    secret_retry: timedelta = timedelta(seconds=15)
    """How soon an adapter whose Secret is missing looks again."""
    runtime_sidecar: bool = False
    """Load through the AIBrix runtime sidecar where a pod has one."""

    @property
    def planning(self) -> PlanSettings:
        return PlanSettings(
            stability_window=self.stability_window,
            backoff=self.backoff,
            unload_timeout=self.unload_timeout,
            verify_interval=self.verify_interval,
        )
