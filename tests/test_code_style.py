"""The whole tree passes ruff's lint (import sorting included) and is formatted as `ruff format` writes it.

The rules and the pinned version are in `pyproject.toml`; `ruff check --fix . && ruff format .` puts a change
right.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).with_name("ruff")


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"])
def test_ruff_finds_nothing_to_change(command: list[str]) -> None:
    result = subprocess.run([str(RUFF), *command], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
