"""A task that will not end when cancelled cannot keep the operator's process alive: once the operator has
stopped, what is left is cancelled once more, and if it still runs the process says which task it is and exits."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

SWALLOWS_CANCELLATION = textwrap.dedent(
    """
    import asyncio, logging
    from modeladapter.operator.controller import running

    running.STOP_STEP_SECONDS = 0.3

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                pass  # what a buggy library might do

    async def main() -> int:
        asyncio.create_task(stubborn(), name="stubborn-task")
        await asyncio.sleep(0)
        await running._end_the_rest()
        return 0

    logging.basicConfig(level=logging.INFO)
    raise SystemExit(asyncio.run(main()))
    """
)


def test_a_task_that_swallows_its_cancellation_cannot_keep_the_process_alive() -> None:
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", SWALLOWS_CANCELLATION], capture_output=True, text=True, timeout=30, check=False
    )
    assert time.monotonic() - began < 10
    assert done.returncode == 1, done.stderr
    assert "would not end; exiting without them" in done.stderr and "stubborn-task" in done.stderr
