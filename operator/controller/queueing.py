"""A work queue of keys, controller-runtime style: deduplicated, delayed, and never the same key twice at once.

* `add(key)` makes the key ready; adding a key that is already waiting to run does nothing more, so a burst of
  pod events for one adapter costs one reconcile;
* `add(key, after=s)` runs it `s` seconds from now, unless it is due sooner anyway (backoff timers, retries);
* a key being processed is never handed out again until `done(key)`; if it was added meanwhile, it runs once
  more right after, so no change is missed (level-triggered reconciles read the world afresh).

Any number of workers may `await get()`; the queue is the only place keys wait.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class ShutDown(Exception):
    """The queue was shut down while waiting for a key."""


class WorkQueue(Generic[K]):
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._ready: deque[K] = deque()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._due: dict[K, float] = {}
        self._timers: list[tuple[float, int, K]] = []
        self._sequence = itertools.count()
        self._wakeup = asyncio.Event()
        self._shut_down = False

    def __len__(self) -> int:
        return len(self._queued) + len(self._due) + len(self._dirty)

    @property
    def processing(self) -> int:
        return len(self._processing)

    def add(self, key: K, *, after: float = 0.0) -> None:
        if self._shut_down:
            return
        if after <= 0:
            self._make_ready(key)
        elif key not in self._queued and key not in self._dirty:
            due = self._clock() + after
            if due < self._due.get(key, float("inf")):
                self._due[key] = due
                heapq.heappush(self._timers, (due, next(self._sequence), key))
        self._notify()

    async def get(self) -> K:
        while True:
            if self._shut_down:
                raise ShutDown()
            self._promote_due()
            if self._ready:
                key = self._ready.popleft()
                self._queued.discard(key)
                self._processing.add(key)
                return key
            self._wakeup.clear()
            wait = self._timers[0][0] - self._clock() if self._timers else None
            # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the result when it is cancelled just
            # as the wait ends, and a worker that swallowed its cancellation would never let a stop finish.
            try:
                async with asyncio.timeout(max(wait, 0.0) if wait is not None else None):
                    await self._wakeup.wait()
            except TimeoutError:
                pass

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self._make_ready(key)
        self._notify()

    def reorder_ready(self, reorder: Callable[[list[K]], None]) -> None:
        """Let `reorder` rearrange, in place, the keys that are ready now (e.g. shuffle them)."""
        keys = list(self._ready)
        reorder(keys)
        if len(keys) != len(self._ready) or set(keys) != set(self._ready):
            raise ValueError("reorder may only rearrange the ready keys")
        self._ready = deque(keys)

    def shut_down(self) -> None:
        self._shut_down = True
        self._notify()

    def _make_ready(self, key: K) -> None:
        self._due.pop(key, None)
        if key in self._processing:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._ready.append(key)

    def _promote_due(self) -> None:
        now = self._clock()
        while self._timers and self._timers[0][0] <= now:
            due, _, key = heapq.heappop(self._timers)
            if self._due.get(key) == due:  # an earlier or cancelled timer for the same key is stale
                self._make_ready(key)

    def _notify(self) -> None:
        # Every waiting worker wakes and looks again; add() and done() stay synchronous for watch handlers.
        self._wakeup.set()
