"""A hanging test fails with its stacks, and the run goes on (see `tests/hang_watchdog.py`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

HANGING_TESTS = """
import asyncio
import pytest

@pytest.mark.hang_limit(1)
async def test_waits_forever():
    await asyncio.sleep(3600)

@pytest.mark.hang_limit(1)
async def test_swallows_the_first_cancellation():
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        pass
    await asyncio.Event().wait()

def test_after_them():
    pass
"""


def test_a_hanging_test_fails_with_every_stack_and_the_run_goes_on(tmp_path: Path) -> None:
    (tmp_path / "test_hanging.py").write_text(HANGING_TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.hang_watchdog", "-p", "no:cacheprovider", "-q",
         "--rootdir", str(tmp_path), "-o", "asyncio_mode=auto", str(tmp_path / "test_hanging.py")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert "2 failed, 1 passed" in output, output
    assert "test_waits_forever has run for 1s: cancelling its asyncio tasks" in output
    assert "--- <Task pending name='Task-1' coro=<test_waits_forever()" in output, "the hung task's stack is shown"
    assert "Current thread" in output, "and every thread's"
    assert result.returncode == 1
