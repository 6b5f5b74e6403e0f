"""Every bad log and every bad time is one line on stderr and exit status 2, never a traceback or a quiet answer.

A log damaged behind the store's back (a version gap, a payload that is not JSON, a value of the wrong kind,
events that do not add up) and a log written by a newer modeladapter (an event type or schema version this one
does not know) are refused by every command that reads the damage, naming the stream and the version; a time
that leaves Python's date range once converted to UTC is refused like any unreadable time.

Findings this file pins: times that leave the date range once in UTC, a payload that is not JSON and events
that do not fold were tracebacks (exit 1); a version gap made `replay` crash while `history`, `events`, `stuck`
and `stats` answered without a word about it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.audit.conftest import Databases, Run, one_line_error, small_log
from tests.audit.logs import damage, write_log

READERS = {
    "history": ("history", "chaos"),
    "events": ("events", "-A"),
    "replay": ("replay", "chaos"),
    "verify": ("verify", "-A"),
    "stuck": ("stuck", "--for", "0s", "-A"),
    "stats": ("stats", "-A"),
}
"""Each command, reading default/chaos (stuck: the events of team-b/waiting, the one adapter stuck in the log)."""


def _errors(modeladapter: Run, url: str, kubeconfig: Path) -> dict[str, str]:
    """The one-line error of each command on the log at `url` (each must fail that way)."""
    errors = {}
    for command, argv in READERS.items():
        extra = ("--kubeconfig", str(kubeconfig)) if command == "verify" else ()
        errors[command] = one_line_error(modeladapter(*argv, *extra, "--database-url", url))
    return errors


# --- damaged logs ----------------------------------------------------------------------------------------------


def test_a_version_gap_is_one_line_naming_the_stream_and_the_missing_version(
    modeladapter: Run, databases: Databases, empty_cluster: Path
) -> None:
    url = write_log(databases.new())
    damage(url, "DELETE FROM adapter_events WHERE stream_id = 'uid-chaos' AND version = 9")
    damage(url, "DELETE FROM adapter_events WHERE stream_id = 'uid-waiting' AND version = 1")
    for command, error in _errors(modeladapter, url, empty_cluster).items():
        assert error.startswith(
            f"modeladapter {command}: stream uid-chaos (default/chaos) has no event at version 9 (it should have "
            "versions 1 to 17): the event log is missing events, so this adapter's history cannot be told"
        ), error
        # history and replay read default/chaos alone; the others every stream, team-b/waiting's too
        assert error.endswith("; 1 other stream(s) cannot be read in full either") == (
            command not in ("history", "replay")
        ), error
    assert one_line_error(modeladapter("stats", "-n", "team-b", "--database-url", url)) == (
        "modeladapter stats: stream uid-waiting (team-b/waiting) has no event at version 1 (it should have versions "
        "1 to 2): the event log is missing events, so this adapter's history cannot be told"
    )


def test_a_gap_in_one_adapters_stream_does_not_stop_answers_about_the_others(modeladapter: Run, tmp_path: Path) -> None:
    url = write_log(f"sqlite:///{tmp_path}/events.db")
    damage(url, "DELETE FROM adapter_events WHERE stream_id = 'uid-chaos' AND version = 17")
    assert "has no event at version 17" in one_line_error(modeladapter("history", "chaos", "--database-url", url))
    for argv in (("history", "waiting", "-n", "team-b"), ("replay", "gone"), ("stats", "-n", "team-b"),
                 ("events", "--adapter", "gone")):  # fmt: skip
        result = modeladapter(*argv, "--database-url", url)
        assert (result.code, result.err) == (0, ""), (argv, result)


def test_a_payload_that_is_not_json_is_one_line_naming_its_stream_and_version(
    modeladapter: Run, tmp_path: Path, empty_cluster: Path
) -> None:
    url = write_log(f"sqlite:///{tmp_path}/events.db")
    # Version 8 of chaos and 2 of waiting are PhaseChanged decisions: every command reads one of them.
    damage(url, "UPDATE adapter_events SET payload = '{\"to_phase\": \"Loading\", oops' "
                "WHERE (stream_id = 'uid-chaos' AND version = 8) OR (stream_id = 'uid-waiting' AND version = 2)")  # fmt: skip
    for command, error in _errors(modeladapter, url, empty_cluster).items():
        where = "stream uid-waiting version 2" if command == "stuck" else "stream uid-chaos version 8"
        assert error.startswith(f"modeladapter {command}: cannot read the event log {url}: {where}: "), error
        assert "payload is not JSON (Expecting " in error, error


def test_an_event_type_from_a_newer_modeladapter_is_one_line_naming_it(
    modeladapter: Run, databases: Databases, empty_cluster: Path
) -> None:
    url = write_log(databases.new())
    damage(url, "UPDATE adapter_events SET type = 'AdapterTeleported' WHERE stream_id = 'uid-chaos' AND version = 16")
    for command, error in _errors(modeladapter, url, empty_cluster).items():
        assert error == (
            f"modeladapter {command}: stream uid-chaos (default/chaos) version 16 is a 'AdapterTeleported' event, a "
            "type this modeladapter does not know (written by a newer version?); upgrade modeladapter to read this log"
        ), error


def test_a_schema_version_from_a_newer_modeladapter_is_one_line_naming_it(
    modeladapter: Run, databases: Databases
) -> None:
    url = write_log(databases.new())
    damage(url, "UPDATE adapter_events SET schema_version = 7 WHERE stream_id = 'uid-chaos' AND version = 8")
    for argv in (("history", "chaos"), ("events",), ("replay", "chaos"), ("stats",)):
        error = one_line_error(modeladapter(*argv, "--database-url", url))
        assert error.startswith(
            f"modeladapter {argv[0]}: cannot read the event log {url}: stream uid-chaos version 8: PhaseChanged schema "
            "version 7 is newer than this modeladapter reads (1); upgrade modeladapter to read this log"
        ), error


@pytest.mark.parametrize(
    "column, value, expected",
    [
        ("recorded_at", "'yesterday'", "a stored value is unreadable: Invalid isoformat string: 'yesterday'"),
        ("event_id", "'not-a-uuid'", "a stored value is unreadable: badly formed hexadecimal UUID string"),
        (
            "version",
            "'eight'",
            "stream uid-chaos (default/chaos) has an event whose version is not a whole number: 'eight'",
        ),
        ("observed_generation", "'first'", "stream uid-chaos version 8: observed_generation: Input should be a valid"),
        ("payload", "'[1, 2]'", "stream uid-chaos version 8: payload is list, not a JSON object"),
        ("payload", "'{}'", "stream uid-chaos version 8: PhaseChanged v1: PhaseChanged.from_phase: Field required;"),
    ],
)
def test_a_stored_value_of_the_wrong_kind_is_one_line(
    modeladapter: Run, tmp_path: Path, column: str, value: str, expected: str
) -> None:
    url = write_log(f"sqlite:///{tmp_path}/events.db")
    damage(url, f"UPDATE adapter_events SET {column} = {value} WHERE stream_id = 'uid-chaos' AND version = 8")
    error = one_line_error(modeladapter("events", "--database-url", url))
    assert expected in error, error


def test_events_that_do_not_add_up_are_one_line_from_replay(modeladapter: Run, tmp_path: Path) -> None:
    url = small_log(tmp_path)  # a failed load on a pod the stream never placed the adapter on
    for argv in (("replay", "chaos"), ("replay", "chaos", "--step")):
        assert one_line_error(modeladapter(*argv, "--database-url", url)) == (
            "modeladapter replay: cannot replay default/chaos: its events do not add up: stream uid-chaos: event for "
            "pod 'pod-a' which has no placement"
        )


def test_an_error_that_carries_newlines_or_escapes_from_the_log_is_still_one_line(
    modeladapter: Run, tmp_path: Path
) -> None:
    url = write_log(f"sqlite:///{tmp_path}/events.db")
    damage(url, "UPDATE adapter_streams SET name = 'cha' || char(10) || 'os' || char(27) || '[2J' "
                "WHERE stream_id = 'uid-chaos'",
           "DELETE FROM adapter_events WHERE stream_id = 'uid-chaos' AND version = 9")  # fmt: skip
    error = one_line_error(modeladapter("stats", "--database-url", url))
    assert error.startswith("modeladapter stats: stream uid-chaos (default/cha\\nos\\x1b[2J) has no event at version 9")


# --- times ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, flag, text",
    [
        (("replay", "chaos", "--at", "0001-01-01T00:00:00+14:00"), "--at", "0001-01-01T00:00:00+14:00"),
        (("replay", "chaos", "--at", "9999-12-31T23:59:59-14:00"), "--at", "9999-12-31T23:59:59-14:00"),
        (("events", "--since", "0001-01-01T09:59:59.5+10:00"), "--since", "0001-01-01T09:59:59.5+10:00"),
        (("events", "--until", "9999-12-31T20:00-05:00"), "--until", "9999-12-31T20:00-05:00"),
    ],
)
def test_a_time_out_of_range_once_in_utc_is_one_line(
    modeladapter: Run, tmp_path: Path, argv: tuple[str, ...], flag: str, text: str
) -> None:
    url = write_log(f"sqlite:///{tmp_path}/events.db")
    assert one_line_error(modeladapter(*argv, "--database-url", url)) == (
        f"modeladapter {argv[0]}: {flag}: {text!r} is out of range: in UTC, a time must fall in "
        "0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z"
    )


def test_the_first_and_last_instants_in_range_are_answered(modeladapter: Run, tmp_path: Path) -> None:
    url = write_log(f"sqlite:///{tmp_path}/events.db")
    for argv in (("events", "--since", "0001-01-01T00:00:00Z"), ("events", "--until", "9999-12-31T23:59:59.999999Z"),
                 ("events", "--until", "9999-12-31"), ("events", "--since", "9999-12-31T23:59:59.999999Z")):  # fmt: skip
        result = modeladapter(*argv, "--database-url", url)
        assert (result.code, result.err) == (0, ""), (argv, result)
    before = one_line_error(modeladapter("replay", "chaos", "--at", "0001-01-01T00:00:00Z", "--database-url", url))
    assert before.startswith("modeladapter replay: default/chaos did not exist yet at 0001-01-01T00:00:00.999999Z")


def test_a_duration_that_reaches_back_before_the_year_1_is_one_line(modeladapter: Run, tmp_path: Path) -> None:
    url = write_log(f"sqlite:///{tmp_path}/events.db")
    assert one_line_error(modeladapter("stuck", "--for", "800000d", "--database-url", url)) == (
        "modeladapter stuck: --for: '800000d' reaches back before the year 1"
    )
    assert one_line_error(modeladapter("events", "--since", "800000d", "--database-url", url)) == (
        "modeladapter events: --since: '800000d' reaches back before the year 1"
    )
    assert "cannot read '900000000000d' as a time" in one_line_error(  # more than a timedelta holds
        modeladapter("events", "--since", "900000000000d", "--database-url", url)
    )


# --- limits -----------------------------------------------------------------------------------------------------


def test_a_limit_beyond_what_a_database_takes_means_every_event(modeladapter: Run, tmp_path: Path) -> None:
    url = write_log(f"sqlite:///{tmp_path}/events.db")
    everything = modeladapter("events", "-A", "--database-url", url)
    for limit in ("9223372036854775808", "9" * 5000, "0003"):
        result = modeladapter("events", "-A", "--limit", limit, "--database-url", url)
        assert (result.code, result.err) == (0, ""), (limit, result)
        assert result.out == everything.out if limit != "0003" else len(result.out.splitlines()) == 4
    for limit in ("²", "٣", "000", "1e3"):
        assert one_line_error(modeladapter("events", "--limit", limit, "--database-url", url)) == (
            f"modeladapter events: --limit: expected a whole number of events, at least 1, got {limit!r}"
        )
