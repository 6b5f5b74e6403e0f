"""A test that hangs fails, with every thread's and every asyncio task's stack, instead of stalling the run.

Each test (setup, call and teardown together) gets `MODELADAPTER_TEST_HANG_SECONDS` (600 s by default; a test
may ask for more with `@pytest.mark.hang_limit(seconds)`). When that passes, the watchdog thread writes the
stacks to stderr and cancels every pending asyncio task (again every 5 s, for a task that swallows one
cancellation), which ends a test stuck on an await: it fails with CancelledError and the run goes on. If the
run has still not moved on after a grace period (a thread blocked outside the event loop), the stacks are
written once more and the process exits with status 3: a hang is a failure to look at, never a CI run that times out
silently.
"""

from __future__ import annotations

import asyncio
import faulthandler
import io
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import TextIO

import pytest

DEFAULT_LIMIT_SECONDS = 600.0
GRACE_SECONDS = 60.0
CANCEL_EVERY_SECONDS = 5.0
HUNG_EXIT_STATUS = 3


_config: pytest.Config | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _config
    _config = config
    config.addinivalue_line(
        "markers", "hang_limit(seconds): this test may run that long before the hang watchdog stops it"
    )


def _uncaptured() -> AbstractContextManager[object]:
    """pytest captures file descriptor 2 while a test runs; the stacks must reach the real stderr."""
    capture = _config.pluginmanager.getplugin("capturemanager") if _config is not None else None
    return capture.global_and_fixture_disabled() if capture is not None else nullcontext()


def _limit(item: pytest.Item) -> float:
    marker = item.get_closest_marker("hang_limit")
    if marker is not None:
        return float(marker.args[0])
    return float(os.environ.get("MODELADAPTER_TEST_HANG_SECONDS", DEFAULT_LIMIT_SECONDS))


def _pending_tasks() -> list[asyncio.Task[object]]:
    # Read from another thread while the loop may add tasks: copying the weak set can race, so try again.
    for _ in range(10):
        try:
            return [task for task in list(asyncio.tasks._all_tasks) if not task.done()]  # type: ignore[attr-defined]
        except RuntimeError:
            continue
    return []


def write_stacks(out: TextIO, headline: str) -> None:
    """Every thread's stack and every pending asyncio task's stack, under a headline."""
    out.write(f"\n{'=' * 20} {headline} {'=' * 20}\n")
    out.flush()
    faulthandler.dump_traceback(file=out, all_threads=True)
    for task in _pending_tasks():
        stack = io.StringIO()
        try:
            task.print_stack(file=stack)
        except Exception as error:  # the task may finish while we look
            stack.write(f"(no stack: {error!r})\n")
        out.write(f"--- {task!r}\n{stack.getvalue()}")
    out.write(f"{'=' * 20} end of stacks {'=' * 20}\n")
    out.flush()


def _cancel_pending_tasks() -> None:
    for task in _pending_tasks():
        try:
            task.get_loop().call_soon_threadsafe(task.cancel)
        except RuntimeError:  # its loop is closed
            pass


class _Watchdog:
    def __init__(self, nodeid: str, limit: float) -> None:
        self.nodeid = nodeid
        self.limit = limit
        self.finished = threading.Event()
        self.thread = threading.Thread(target=self._watch, name=f"hang-watchdog {nodeid}", daemon=True)

    def _watch(self) -> None:
        if self.finished.wait(self.limit):
            return
        out = sys.__stderr__ or sys.stderr
        with _uncaptured():
            write_stacks(out, f"{self.nodeid} has run for {self.limit:.0f}s: cancelling its asyncio tasks")
        # Again every few seconds: a task may swallow one cancellation and block on the next await.
        for _ in range(int(GRACE_SECONDS / CANCEL_EVERY_SECONDS)):
            _cancel_pending_tasks()
            if self.finished.wait(CANCEL_EVERY_SECONDS):
                return
        with _uncaptured():
            write_stacks(out, f"{self.nodeid} is still stuck {GRACE_SECONDS:.0f}s later: exiting")
        os._exit(HUNG_EXIT_STATUS)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    watchdog = _Watchdog(item.nodeid, _limit(item))
    watchdog.thread.start()
    try:
        yield
    finally:
        watchdog.finished.set()
