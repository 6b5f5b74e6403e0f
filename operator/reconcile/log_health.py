"""Whether the event log can be written, as the appends find it: what `/readyz` reports.

Every reconcile appends through the `Journal`, which tells this object how each append went. An append the
database refused (a disk I/O error, a full disk, a read-only replica, a connection lost mid-commit) makes the
log unwritable until an append succeeds again; an append the log itself rejected (another writer first, a
duplicate) says nothing about the database, which answered. Failed reconciles are retried with a backoff,
so an unwritable log is tried again within 30 s, and readiness comes back with the first append that lands.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from modeladapter.store import StoreError

log = logging.getLogger(__name__)


class LogHealth:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.failing_since: float | None = None
        self.last_error: str | None = None
        self.on_change: Callable[[bool], None] = _nothing
        """Told `writable` at each change (the operator's metric)."""

    @property
    def writable(self) -> bool:
        return self.failing_since is None

    def append_failed(self, error: BaseException) -> None:
        if isinstance(error, StoreError):
            return  # the log answered: it is writable, the batch was not acceptable
        self.last_error = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'no detail'}"
        if self.failing_since is None:
            self.failing_since = self._clock()
            log.error("the event log cannot be written (%s); not ready until an append succeeds", self.last_error)
            self.on_change(False)

    def append_succeeded(self) -> None:
        if self.failing_since is None:
            return
        log.warning("the event log can be written again, after %.1fs", self._clock() - self.failing_since)
        self.failing_since = None
        self.last_error = None
        self.on_change(True)


def _nothing(writable: bool) -> None:
    """No one listens."""
