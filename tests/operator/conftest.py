"""`capture`: the operator's logging configured into a string, as `modeladapter run` configures it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from modeladapter.operator.controller.logs import configure_logging
from modeladapter.operator.controller.settings import LogFormat


class Captured:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]


@pytest.fixture
def capture() -> Iterator[Callable[..., Captured]]:
    """`capture(fmt, level="DEBUG")` configures the operator's logging into a string; undone afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def configure(fmt: LogFormat = "json", level: str = "DEBUG") -> Captured:
        captured = Captured()
        configure_logging(level=level, fmt=fmt, stream=captured.stream)
        return captured

    yield configure
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
