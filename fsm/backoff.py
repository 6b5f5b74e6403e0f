"""Retry timing for loads on one pod: a pure function of the attempt number.

The seed documentation promises up to 5 attempts per pod with an exponential backoff of 5, 10, 20, 40 and
80 seconds, capped at 300 s. Attempt `n` (1-based) that fails waits `base * 2**(n-1)` before the pod may be
tried again; after the fifth failure the wait runs out without another attempt and the placement is
exhausted (the operator then switches pods). An exhausted placement may be reconsidered after `cooldown`,
so that an adapter which fits nowhere else heals once the pod does.

AIBrix computes `5 s * 2**n` in its code (10 s first) while documenting 5 s first; we keep the documented
sequence. The numbers live in the event log (`LoadFailed.retry_at`), never in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """How long to wait after a failed load, and how many attempts a pod gets."""

    base: timedelta = timedelta(seconds=5)
    """The wait after the first failure; each later failure doubles it."""

    cap: timedelta = timedelta(seconds=300)
    """No single wait is longer than this."""

    max_attempts: int = 5
    """Attempts per pod before the placement is exhausted."""

    cooldown: timedelta | None = field(default=None)
    """How long an exhausted placement rests before it may be reconsidered; defaults to `cap`."""

    def __post_init__(self) -> None:
        if self.base <= timedelta(0):
            raise ValueError(f"backoff base must be positive, got {self.base}")
        if self.cap < self.base:
            raise ValueError(f"backoff cap {self.cap} is shorter than the base {self.base}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")

    @classmethod
    def scaled(cls, base_seconds: float, *, max_attempts: int = 5) -> BackoffPolicy:
        """The documented shape (cap = 60 x base) for another base, e.g. a fast one in tests."""
        base = timedelta(seconds=base_seconds)
        return cls(base=base, cap=base * 60, max_attempts=max_attempts)

    def delay(self, attempt: int) -> timedelta:
        """The wait after failed attempt `attempt` (1-based): 5, 10, 20, 40, 80 s ... capped."""
        if attempt < 1:
            raise ValueError(f"attempts are counted from 1, got {attempt}")
        # Bound the exponent so that huge attempt numbers cannot overflow timedelta arithmetic.
        doubled: timedelta = self.base * (2 ** min(attempt - 1, 32))
        return min(doubled, self.cap)

    def retry_at(self, failed_at: datetime, attempt: int) -> datetime:
        """When the pod may be tried again after attempt `attempt` failed at `failed_at`."""
        return failed_at + self.delay(attempt)

    def attempts_left(self, attempts_made: int) -> bool:
        return attempts_made < self.max_attempts

    def reconsider_at(self, exhausted_at: datetime) -> datetime:
        """When an exhausted placement may be given a fresh set of attempts."""
        return exhausted_at + (self.cooldown if self.cooldown is not None else self.cap)


DEFAULT_BACKOFF = BackoffPolicy()
