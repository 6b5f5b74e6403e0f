"""Which pods get an adapter: the policies of `spec.schedulerName`, as pure functions.

* `default` and `least-adapters` (alias `leastAdapters`, AIBrix's default): fewest adapters on the pod.
* `bin-pack` (alias `binPack`): the fullest pod that still has room, so that other pods stay free.
* `random`: uniformly at random, from a seed the caller passes (a decision must be replayable).

Ties are broken by a stable hash of (adapter, pod), so the same adapter lands on the same pod for the same
inputs and placements do not churn between reconciles, while different adapters spread out.

A pod's capacity (`PodView.capacity`: the `adapter.model.aibrix.ai/capacity` annotation, else the engine's
`--max-cpu-loras`) is a hard limit: a full pod is never chosen. vLLM would silently LRU-evict beyond it.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class SchedulingPolicy(StrEnum):
    LEAST_ADAPTERS = "least-adapters"
    BIN_PACK = "bin-pack"
    RANDOM = "random"


POLICY_NAMES: Final[dict[str, SchedulingPolicy]] = {
    "default": SchedulingPolicy.LEAST_ADAPTERS,
    "least-adapters": SchedulingPolicy.LEAST_ADAPTERS,
    "leastAdapters": SchedulingPolicy.LEAST_ADAPTERS,
    "bin-pack": SchedulingPolicy.BIN_PACK,
    "binPack": SchedulingPolicy.BIN_PACK,
    "random": SchedulingPolicy.RANDOM,
}


class UnknownPolicy(ValueError):
    def __init__(self, name: str) -> None:
        self.name = name
        known = ", ".join(sorted(POLICY_NAMES))
        super().__init__(f"unknown scheduler {name!r}; supported: {known}")


def parse_policy(name: str | None) -> SchedulingPolicy:
    """The policy for `spec.schedulerName`; empty or missing means `default`."""
    if not name:
        return SchedulingPolicy.LEAST_ADAPTERS
    try:
        return POLICY_NAMES[name]
    except KeyError:
        raise UnknownPolicy(name) from None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A schedulable pod and how loaded it is."""

    pod: str
    adapters: int
    """Adapters placed on the pod now (by every ModelAdapter), not counting the one being scheduled."""
    capacity: int | None = None
    """How many adapters the pod can hold; None is unlimited."""

    @property
    def has_room(self) -> bool:
        return self.capacity is None or self.adapters < self.capacity


@dataclass(frozen=True, slots=True)
class Choice:
    pods: tuple[str, ...]
    """The chosen pods, best first."""
    short_by: int
    """How many more pods were wanted than could be chosen."""
    full: tuple[str, ...]
    """Candidates skipped because they are at capacity."""


def stable_hash(adapter: str, pod: str) -> int:
    digest = hashlib.blake2b(f"{adapter}\x00{pod}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def choose_pods(
    policy: SchedulingPolicy,
    candidates: Sequence[Candidate],
    *,
    adapter: str,
    count: int | None,
    seed: str = "",
) -> Choice:
    """Choose `count` distinct pods for `adapter` (None: every candidate with room)."""
    if count is not None and count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    roomy = [c for c in candidates if c.has_room]
    full = tuple(c.pod for c in candidates if not c.has_room)
    ranked = _rank(policy, roomy, adapter=adapter, seed=seed)
    wanted = len(ranked) if count is None else count
    chosen = tuple(c.pod for c in ranked[:wanted])
    return Choice(pods=chosen, short_by=max(wanted - len(chosen), 0), full=full)


def _rank(policy: SchedulingPolicy, candidates: list[Candidate], *, adapter: str, seed: str) -> list[Candidate]:
    match policy:
        case SchedulingPolicy.LEAST_ADAPTERS:
            return sorted(candidates, key=lambda c: (c.adapters, stable_hash(adapter, c.pod), c.pod))
        case SchedulingPolicy.BIN_PACK:
            return sorted(candidates, key=lambda c: (_room(c), -c.adapters, stable_hash(adapter, c.pod), c.pod))
        case SchedulingPolicy.RANDOM:
            shuffled = sorted(candidates, key=lambda c: c.pod)
            random.Random(f"{seed}\x00{adapter}").shuffle(shuffled)
            return shuffled


def _room(candidate: Candidate) -> float:
    return float("inf") if candidate.capacity is None else candidate.capacity - candidate.adapters
