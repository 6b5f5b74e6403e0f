"""Where the tests find promtool: `$MODELADAPTER_PROMTOOL`, else where `.ci/prepare/50-promtool` unpacks it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PREPARED = Path.home() / ".cache" / "modeladapter" / "promtool" / "promtool"
"""`.ci/prepare/50-promtool`'s default ($MODELADAPTER_PROMTOOL_CACHE/promtool)."""


def promtool() -> Path:
    """The promtool binary; the calling test fails (never skips) when there is none, saying how to get it."""
    configured = os.environ.get("MODELADAPTER_PROMTOOL")
    path = Path(configured) if configured else PREPARED
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"promtool is not at {path}: run .ci/prepare/50-promtool (it unpacks Debian's prometheus package's "
            f"promtool into {PREPARED.parent}), or set MODELADAPTER_PROMTOOL to a promtool binary",
            pytrace=False,
        )
    return path
