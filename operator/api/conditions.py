"""`metav1.Condition` bookkeeping, cert-manager style: pure functions over plain condition dicts.

* `lastTransitionTime` changes only when a condition's `status` flips, so rewriting the same verdict never
  looks like news (and never triggers watchers);
* times are truncated to whole seconds and written as RFC 3339 with `Z`, as the API server would store them,
  so a status read back compares equal to the one written;
* `observedGeneration` is stamped on every condition;
* reasons must be CamelCase and messages are cut to the API's 32768-character limit;
* conditions keep a stable order (the seed documentation's: Initialized, Scheduled, Ready, then the rest), so
  a projection that did not change is byte-for-byte the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

ConditionStatus = Literal["True", "False", "Unknown"]
MAX_MESSAGE: Final = 32768
REASON: Final = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
ORDER: Final = ("Initialized", "Scheduled", "Ready")


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: ConditionStatus
    reason: str
    message: str

    def __post_init__(self) -> None:
        if not REASON.match(self.reason):
            raise ValueError(f"condition reason {self.reason!r} is not CamelCase as metav1.Condition requires")


def format_time(moment: datetime) -> str:
    """RFC 3339, UTC, whole seconds: the form metadata and conditions are stored in."""
    if moment.tzinfo is None:
        raise ValueError("condition times must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_conditions(
    current: Iterable[Mapping[str, Any]],
    wanted: Iterable[Condition],
    *,
    now: datetime,
    observed_generation: int,
) -> list[dict[str, Any]]:
    """The conditions after asserting `wanted`; others already present are kept as they are."""
    by_type: dict[str, dict[str, Any]] = {str(c.get("type")): dict(c) for c in current if c.get("type")}
    for condition in wanted:
        previous = by_type.get(condition.type)
        unchanged = previous is not None and previous.get("status") == condition.status
        by_type[condition.type] = {
            "type": condition.type,
            "status": condition.status,
            "reason": condition.reason,
            "message": condition.message[:MAX_MESSAGE],
            "lastTransitionTime": previous["lastTransitionTime"]
            if unchanged and previous is not None and previous.get("lastTransitionTime")
            else format_time(now),
            "observedGeneration": observed_generation,
        }
    return sorted(by_type.values(), key=_position)


def _position(condition: Mapping[str, Any]) -> tuple[int, str]:
    kind = str(condition.get("type"))
    return (ORDER.index(kind) if kind in ORDER else len(ORDER), kind)
