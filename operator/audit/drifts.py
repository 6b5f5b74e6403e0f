"""What `verify` finds: drifts between the event log and the cluster or the engines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Drift:
    """One field on which the log and the cluster disagree (or an adapter only one of them knows)."""

    namespace: str
    name: str
    uid: str
    field: str
    log: Any
    """What the fold of the log says the field should be (None: the log has no such adapter)."""
    cluster: Any
    """What the cluster (or, for `engine[POD]`, the engine) shows (None: the cluster has no such adapter, or
    the field is absent)."""
    note: str = ""


@dataclass(frozen=True, slots=True)
class Verification:
    checked: int
    """Adapters compared field by field (known to both the log and the cluster)."""
    drifts: list[Drift]
