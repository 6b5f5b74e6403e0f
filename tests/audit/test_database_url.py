"""Which event log the audit commands read: `--database-url`, else `MODELADAPTER_DATABASE_URL`, else the sandbox's file.

`modeladapter sandbox` (and the operator, by default) write `./.modeladapter/events.db`; run in the same
directory, the audit commands read it with no flag at all.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from modeladapter.operator.cli.main import main
from modeladapter.store import DEFAULT_DATABASE_URL
from tests.audit.conftest import run_process, sandbox_environment, small_log


def _path(database_url: str) -> Path:
    return Path(make_url(database_url).database or "")


def test_the_default_is_the_sandboxs_file_in_the_current_directory(tmp_path: Path) -> None:
    assert make_url(DEFAULT_DATABASE_URL).database == ".modeladapter/events.db"
    here = tmp_path / "here"
    here.mkdir()
    missing = run_process("stats", env=sandbox_environment(), cwd=here)
    assert missing.returncode == 2 and missing.stderr.startswith(
        "modeladapter stats: no event log at .modeladapter/events.db"
    )
    assert list(here.iterdir()) == [], "nothing created"
    (here / ".modeladapter").mkdir()
    shutil.copyfile(_path(small_log(tmp_path)), here / ".modeladapter" / "events.db")
    found = run_process("history", "chaos", "-o", "json", env=sandbox_environment(), cwd=here)
    assert found.returncode == 0 and json.loads(found.stdout)["name"] == "chaos"


def test_the_environment_variable_is_read_when_there_is_no_flag_and_the_flag_wins(tmp_path: Path) -> None:
    url = small_log(tmp_path)
    environment = {**sandbox_environment(), "MODELADAPTER_DATABASE_URL": url}
    found = run_process("stats", "-o", "json", env=environment, cwd=tmp_path)
    assert found.returncode == 0 and found.stderr == ""
    assert [a["name"] for a in json.loads(found.stdout)["adapters"]] == ["chaos"]
    elsewhere = f"sqlite:///{tmp_path}/elsewhere/events.db"
    flagged = run_process("stats", "--database-url", elsewhere, env=environment, cwd=tmp_path)
    assert flagged.returncode == 2 and f"no event log at {tmp_path}/elsewhere/events.db" in flagged.stderr


def test_the_help_names_the_default_and_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("history", "events", "replay", "verify", "stuck", "stats"):
        with pytest.raises(SystemExit) as exited:
            main([command, "--help"])
        assert exited.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "MODELADAPTER_DATABASE_URL" in text and ".modeladapter/events.db" in text, command
