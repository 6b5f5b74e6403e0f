"""A work queue of keys, controller-runtime style: deduplicated, delayed, and never the same key twice at once.

* `add(key)` makes the key ready; adding a key that is already waiting to run does nothing more, so a burst of
  pod events for one adapter costs one reconcile;
* `add_after(key, s)` runs it `s` seconds from now (at once for `s` <= 0), unless it is due sooner anyway
  (backoff timers, retries, a reconcile's requeue); `add(key, after=s)` is the same for `s` > 0;
* a key being processed is never handed out again until `done(key)`; if it was added meanwhile, it runs once
  more right after, so no change is missed (level-triggered reconciles read the world afresh);
* with a `RestPolicy`, a key that keeps coming back right after its `done` is made to rest: the first few
  quick runs in a row are free (a new adapter takes a few passes to reach Running, and each should start at
  once), then each rests twice as long as the one before, up to a second. A reconcile that keeps asking to
  run again at once (a requeue of 0, or the watch event of its own write) therefore cannot loop without rest,
  whatever it decides; each add held back is counted (`QueueObserver.rested`), and a key that comes back
  after a pause starts afresh.

Any number of workers may `await get()`; the queue is the only place keys wait.

It keeps client-go's workqueue bookkeeping for the metrics, and tells it to a `QueueObserver`: an add is
counted when a key starts waiting to be handed out (a delayed add when its timer fires; an add for a key
already waiting is not), every `add_after` as a retry (client-go's `AddAfter` counts one before it looks at
the delay, so a delay of 0 is a retry too), its wait ends at `get()`, its work at `done()`. `depth` is the keys
waiting to be handed out (those waiting for their timer are not in it, as in client-go), and
`processing_ages()` how long each key in flight has been, for the gauges computed at scrape time.

The observer can be attached late (`observe`): a standby fills its queue from its informers but reports
nothing until it leads, and then the keys waiting count as added at that moment, as if a controller started
there (controller-runtime starts its controller, queue and all, only once elected).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

K = TypeVar("K", bound=Hashable)


class ShutDown(Exception):
    """The queue was shut down while waiting for a key."""


class QueueObserver(Protocol):
    """What the queue reports, for `workqueue_*` metrics (`ControllerRuntimeMetrics` is one)."""

    def added(self) -> None:
        """A key started waiting to be handed out."""

    def retried(self) -> None:
        """A key was added back after a delay (client-go's `AddAfter`: a backoff, a requeue, a deadline)."""

    def started(self, waited: float) -> None:
        """A key was handed out after waiting `waited` seconds since it was added."""

    def finished(self, worked: float) -> None:
        """A key was done with, `worked` seconds after it was handed out."""

    def rested(self) -> None:
        """A key added soon after its last `done` was made to wait for its rest to end (`RestPolicy`)."""


@dataclass(frozen=True, slots=True)
class RestPolicy:
    """How long a key rests before a run that follows its previous one closely (within `window`)."""

    free_runs: int = 8
    """Quick runs in a row that start at once: the few passes a new or changed adapter takes."""
    first: float = 0.005
    """The first rest, in seconds; each further quick run rests twice as long as the one before."""
    longest: float = 1.0
    """No rest is longer: a reconcile that never stops asking runs about once a second."""
    window: float = 2.0
    """A run that starts later than this after the previous one ended starts a new streak."""

    def __post_init__(self) -> None:
        if self.free_runs < 0 or not 0 < self.first <= self.longest < self.window:
            raise ValueError(f"a rest policy needs free_runs >= 0 and 0 < first <= longest < window, got {self}")

    def rest(self, streak: int) -> float:
        """Seconds to rest before the `streak`-th quick run in a row (0 for the free ones)."""
        if streak <= self.free_runs:
            return 0.0
        return min(self.longest, self.first * 2.0 ** (streak - self.free_runs - 1))


class WorkQueue(Generic[K]):
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        observer: QueueObserver | None = None,
        rest: RestPolicy | None = None,
    ) -> None:
        self._clock = clock
        self._rest_policy = rest
        self._finished_at: OrderedDict[K, float] = OrderedDict()
        """When each key was last done with, oldest first; only the last `rest.window` seconds are kept."""
        self._streak: dict[K, int] = {}
        """How many runs in a row each key started within `rest.window` of the previous run's end."""
        self._add_counted: set[K] = set()
        """Keys resting after their processing whose add, made during it, was counted already."""
        self._observer = observer
        self._ready: deque[K] = deque()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._due: dict[K, float] = {}
        self._timers: list[tuple[float, int, K]] = []
        self._sequence = itertools.count()
        self._added_at: dict[K, float] = {}
        """When each waiting key was added (its first add since it was last handed out)."""
        self._started_at: dict[K, float] = {}
        """When each key in flight was handed out."""
        self._wakeup = asyncio.Event()
        self._shut_down = False

    def __len__(self) -> int:
        """Every key with a reason to run: waiting to be handed out, or for its timer."""
        return len(self._queued) + len(self._due) + len(self._dirty)

    @property
    def depth(self) -> int:
        """The keys waiting to be handed out (not those waiting for a timer): client-go's depth."""
        return len(self._queued) + len(self._dirty)

    @property
    def processing(self) -> int:
        return len(self._processing)

    def processing_ages(self) -> list[float]:
        """How long, in seconds, each key in flight has been processed so far."""
        now = self._clock()
        return [now - started for started in self._started_at.values()]

    def add(self, key: K, *, after: float = 0.0) -> None:
        """Make the key ready now (client-go's `Add`), or, for `after` > 0, `add_after(key, after)`."""
        if after > 0:
            self.add_after(key, after)
            return
        if self._shut_down:
            return
        self._make_ready(key)
        self._notify()

    def add_after(self, key: K, after: float) -> None:
        """Add the key `after` seconds from now, at once if `after` <= 0 (client-go's `AddAfter`, which
        `AddRateLimited` calls too): counted as a retry whatever the delay, as client-go counts it."""
        if self._shut_down:
            return
        if self._observer is not None:
            self._observer.retried()
        if after <= 0:
            self._make_ready(key)
        elif key not in self._queued and key not in self._dirty:
            due = self._clock() + after
            if due < self._due.get(key, float("inf")):
                self._due[key] = due
                heapq.heappush(self._timers, (due, next(self._sequence), key))
        self._notify()

    def observe(self, observer: QueueObserver | None) -> None:
        """Report to `observer` from now on (None: to nobody). The keys waiting now count as added now, and
        their wait starts now: to the metrics, the queue starts here, whatever it held before."""
        self._observer = observer
        if observer is None:
            return
        now = self._clock()
        for key in self._queued | self._dirty:
            self._added_at[key] = now
            observer.added()

    async def get(self) -> K:
        while True:
            if self._shut_down:
                raise ShutDown()
            self._promote_due()
            if self._ready:
                key = self._ready.popleft()
                self._queued.discard(key)
                self._processing.add(key)
                now = self._clock()
                added = self._added_at.pop(key, now)
                self._started_at[key] = now
                self._count_streak(key, now)
                if self._observer is not None:
                    self._observer.started(now - added)
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
        now = self._clock()
        started = self._started_at.pop(key, None)
        if started is not None and self._observer is not None:
            self._observer.finished(now - started)
        if self._rest_policy is not None:
            self._forget_rests(now)
            self._finished_at[key] = now
            self._finished_at.move_to_end(key)
        if key in self._dirty:
            self._dirty.discard(key)
            # It was counted as an add when it was added during its processing; it runs once it has rested.
            rest_ends = self._rest_ends(key)
            if rest_ends > now:
                self._add_counted.add(key)
                self._rest(key, rest_ends)
            else:
                self._enqueue(key)
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
        if key in self._dirty or key in self._queued:
            return
        rest_ends = self._rest_ends(key)
        if key not in self._processing and rest_ends > self._clock():
            self._rest(key, rest_ends)
            return
        self._added_at.setdefault(key, self._clock())
        if key in self._add_counted:
            self._add_counted.discard(key)  # added while it was processed, and counted then
        elif self._observer is not None:
            self._observer.added()
        if key in self._processing:
            self._dirty.add(key)
        else:
            self._enqueue(key)

    def _rest(self, key: K, until: float) -> None:
        """Hand the key out when its rest ends (sooner only if a timer already has it due sooner)."""
        if self._observer is not None:
            self._observer.rested()
        if until < self._due.get(key, math.inf):
            self._due[key] = until
            heapq.heappush(self._timers, (until, next(self._sequence), key))

    def _rest_ends(self, key: K) -> float:
        """When the key's next run may start: its last run's end plus the rest its streak has earned."""
        finished = self._finished_at.get(key)
        if self._rest_policy is None or finished is None:
            return -math.inf
        return finished + self._rest_policy.rest(self._streak.get(key, 0) + 1)

    def _count_streak(self, key: K, started: float) -> None:
        finished = self._finished_at.get(key)
        if self._rest_policy is not None and finished is not None and started - finished < self._rest_policy.window:
            self._streak[key] = self._streak.get(key, 0) + 1
        else:
            self._streak.pop(key, None)

    def _forget_rests(self, now: float) -> None:
        assert self._rest_policy is not None
        while self._finished_at:
            key, finished = next(iter(self._finished_at.items()))
            if finished + self._rest_policy.window > now:
                break
            del self._finished_at[key]
            self._streak.pop(key, None)

    def _enqueue(self, key: K) -> None:
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
