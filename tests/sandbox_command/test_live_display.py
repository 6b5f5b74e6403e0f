"""The sandbox's live display (`sandbox/live.py`): plain lines into a pipe, a status line on a terminal only.

A pipe cannot show the terminal behaviour, so these drive `Screen` in this process, with `tty` and `width` fixed.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

from modeladapter.sandbox.documents import AdapterRef
from modeladapter.sandbox.live import BOLD, CLEAR_LINE, RESET, Screen, waiting_text

SAMPLE = AdapterRef("default", "qwen-code-lora")
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class TestIntoAPipe:
    def test_lines_are_plain_and_the_status_line_is_never_written(self) -> None:
        out = io.StringIO()
        screen = Screen(out, tty=False)

        screen.status("waiting 1s: qwen-code-lora Loading")
        screen.print("phase Bound -> Running", style=BOLD)
        screen.status("waiting 2s: qwen-code-lora Loading")
        screen.clear_status()

        assert out.getvalue() == "phase Bound -> Running\n"

    def test_a_stream_that_is_not_a_terminal_is_recognised_as_such(self) -> None:
        assert Screen(io.StringIO()).tty is False


class TestOnATerminal:
    def test_the_status_line_stays_under_the_log_and_each_line_pushes_it_down(self) -> None:
        out = io.StringIO()
        screen = Screen(out, tty=True, width=80)

        screen.status("waiting 0s: qwen-code-lora Pending")
        screen.print("phase Pending -> Scheduled", style=BOLD)

        assert out.getvalue() == (
            f"{CLEAR_LINE}waiting 0s: qwen-code-lora Pending"
            f"{CLEAR_LINE}{BOLD}phase Pending -> Scheduled{RESET}\nwaiting 0s: qwen-code-lora Pending"
        )

    def test_the_status_line_is_cut_to_the_terminal_width_so_that_it_never_wraps(self) -> None:
        out = io.StringIO()
        screen = Screen(out, tty=True, width=30)

        screen.status("waiting 12s: qwen-code-lora Loading (attempt 2 on qwen-coder-1-5b-instruct-abc)")

        written = out.getvalue().removeprefix(CLEAR_LINE)
        assert len(written) == 29 and written.endswith("…")

    def test_an_unchanged_status_is_not_redrawn_and_clearing_erases_it(self) -> None:
        out = io.StringIO()
        screen = Screen(out, tty=True, width=80)

        screen.status("serving")
        screen.status("serving")
        screen.clear_status()

        assert out.getvalue() == f"{CLEAR_LINE}serving{CLEAR_LINE}"


class TestTheStatusText:
    def test_while_waiting_it_says_for_what_and_since_when(self) -> None:
        text = waiting_text({SAMPLE: None}, NOW, running=lambda _: False, elapsed=3.7)

        assert text == "waiting 3s: qwen-code-lora applied, the operator has not recorded it yet"

    def test_anything_else_awaited_is_added(self) -> None:
        text = waiting_text({SAMPLE: None}, NOW, running=lambda _: True, also="chaos: replacement pod starting")

        assert text == "waiting: chaos: replacement pod starting"

    def test_once_everything_runs_it_says_so_and_how_to_stop(self) -> None:
        text = waiting_text({SAMPLE: None}, NOW, running=lambda _: True)

        assert text == "serving: qwen-code-lora Running (0 instance(s)) · Ctrl-C stops the sandbox"
