"""What `modeladapter sandbox` shows while it runs: every event of the log as it is appended, and a status line.

`LogTail` follows the event log by position (`read_all(after_position=...)`, the order of commits) and prints
`narration.line(event)` for each event, the same line the audit commands print. Phase changes stand out
(bold on a terminal) and faults are marked; events of streams that began before this run (an earlier run's
adapters, which the operator finalizes because their cluster is gone) are labelled as such.

`Screen` owns the output. On a terminal it keeps one self-overwriting status line under the log, e.g.
`waiting: qwen-code-lora Loading (attempt 2 on pod-1, retry in 3s)`; anywhere else (a pipe, a file, a test)
it prints plain lines only, so logs stay clean. `waiting_text` is the pure part: the status line from folded
states and the time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Final, TextIO

from modeladapter.fsm.events import LoadFailed, PhaseChanged, PlacementExhausted, PodLost, PodSwitched, RecordedEvent
from modeladapter.fsm.phases import Phase, PlacementState
from modeladapter.fsm.state import AdapterState, FoldError, fold
from modeladapter.operator.audit.narration import line
from modeladapter.sandbox.documents import AdapterRef
from modeladapter.store import SqlEventStore

BOLD: Final = "\033[1m"
YELLOW: Final = "\033[33m"
DIM: Final = "\033[2m"
RESET: Final = "\033[0m"
CLEAR_LINE: Final = "\r\033[K"
EARLIER_RUN: Final = "(earlier run) "
WARNINGS: Final = (LoadFailed, PlacementExhausted, PodLost, PodSwitched)


class Screen:
    """Lines of output, plus (on a terminal only) one status line that each new line pushes down.

    The status line is cut to the terminal's width: a line that wrapped could not be overwritten in place.
    """

    def __init__(self, out: TextIO, *, tty: bool | None = None, width: int | None = None) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self._width = width
        self._status = ""

    @property
    def width(self) -> int:
        """Columns of the terminal (asked each time: it may be resized), 80 when it cannot say."""
        if self._width is not None:
            return self._width
        try:
            return os.get_terminal_size(self.out.fileno()).columns or 80
        except (AttributeError, OSError, ValueError):
            return 80

    def print(self, text: str = "", *, style: str = "") -> None:
        if self.tty:
            styled = f"{style}{text}{RESET}" if style else text
            self.out.write(f"{CLEAR_LINE}{styled}\n{self._status}")
        else:
            self.out.write(f"{text}\n")
        self.out.flush()

    def status(self, text: str) -> None:
        """Replace the status line (terminal only; elsewhere it would only repeat what the log says)."""
        if not self.tty:
            return
        text = _shorten(text, max(self.width - 1, 10))
        if text == self._status:
            return
        self._status = text
        self.out.write(f"{CLEAR_LINE}{text}")
        self.out.flush()

    def clear_status(self) -> None:
        if self.tty and self._status:
            self._status = ""
            self.out.write(CLEAR_LINE)
            self.out.flush()


class LogTail:
    """Prints every event appended to the log after `after_position`, and keeps this run's streams folded."""

    def __init__(self, store: SqlEventStore, screen: Screen, *, after_position: int) -> None:
        self.store = store
        self.screen = screen
        self.position = after_position
        self.streams: set[str] = set()
        """Streams that began after `after_position`: this run's adapters (an earlier run's began before)."""
        self.states: dict[AdapterRef, AdapterState] = {}
        """This run's adapters as the log has them (the newest stream of each name)."""
        self.counts: dict[str, int] = {}
        """How many events of each type this run's adapters recorded."""

    async def poll(self) -> int:
        """Print what was appended since the last poll; how many events that was."""
        printed = 0
        while True:
            batch = await self.store.read_all(after_position=self.position, limit=500)
            for event in batch:
                self._show(event)
                self.position = event.position
            printed += len(batch)
            if len(batch) < 500:
                return printed

    def _show(self, event: RecordedEvent) -> None:
        if event.version == 1:
            self.streams.add(event.stream_id)
        if event.stream_id not in self.streams:
            self.screen.print(EARLIER_RUN + line(event), style=DIM)
            return
        where = AdapterRef(event.namespace, event.name)
        state = self.states.get(where)
        if state is not None and state.stream_id != event.stream_id:
            state = None  # the adapter was re-created: a new stream
        try:
            self.states[where] = fold([event], state)
        except FoldError:  # cannot happen for a stream read from its start; the line is printed anyway
            pass
        self.counts[event.payload.type] = self.counts.get(event.payload.type, 0) + 1
        payload = event.payload
        if isinstance(payload, PhaseChanged) and payload.from_phase is not payload.to_phase:
            self.screen.print(line(event), style=BOLD)
        elif isinstance(payload, WARNINGS):
            self.screen.print(line(event), style=YELLOW)
        else:
            self.screen.print(line(event))


def waiting_text(adapters: Mapping[AdapterRef, AdapterState | None], now: datetime, *,
                 running: Callable[[AdapterRef], bool], also: str | None = None,
                 elapsed: float | None = None) -> str:  # fmt: skip
    """The status line: what each adapter that is not Running yet waits for (and `also`, anything else
    still awaited), after how long (`elapsed` seconds); or, when nothing is awaited, that they are all Running."""
    waiting = [_one(where, state, now) for where, state in adapters.items() if not running(where)]
    if also:
        waiting.append(also)
    if waiting:
        clock = f" {math.floor(elapsed)}s" if elapsed is not None else ""
        return f"waiting{clock}: " + "; ".join(waiting)
    total = sum((len(s.instances) if s else 0) for s in adapters.values())
    names = ", ".join(w.name for w in adapters)
    return f"serving: {names} Running ({total} instance(s)) · Ctrl-C stops the sandbox"


def _one(where: AdapterRef, state: AdapterState | None, now: datetime) -> str:
    if state is None or state.phase is None:
        return f"{where.name} applied, the operator has not recorded it yet"
    detail = _detail(state, now)
    return f"{where.name} {state.phase}" + (f" ({detail})" if detail else "")


def _detail(state: AdapterState, now: datetime) -> str:
    backoff = [p for p in state.placements if p.state is PlacementState.BACKOFF]
    loading = [p for p in state.placements if p.state is PlacementState.LOADING]
    if backoff:
        placement = min(backoff, key=lambda p: p.next_retry_at or now)
        due = placement.next_retry_at
        wait = f", retry in {math.ceil(max(0.0, (due - now).total_seconds()))}s" if due is not None else ""
        return f"attempt {placement.attempts} on {placement.pod} failed{wait}"
    if loading:
        placement = loading[0]
        return f"attempt {placement.attempts} on {placement.pod}"
    if state.phase in (Phase.PENDING, Phase.SCHEDULED, Phase.FAILED) and state.phase_message:
        return _shorten(state.phase_message, 90)
    if state.phase is Phase.RUNNING:
        return f"{len(state.instances)} instance(s)"
    return ""


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
