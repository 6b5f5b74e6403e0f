"""`modeladapter sandbox --database-url postgresql://...`: the same run, its log in PostgreSQL instead of SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import read_log
from tests.sandbox_command.conftest import (
    SAMPLE,
    TIMELINE,
    phases_in_log,
    phases_printed,
    run_sandbox,
    streams_of,
)

pytestmark = pytest.mark.postgres


def test_a_fresh_postgresql_database_gets_the_schema_and_the_adapter_s_stream(
    tmp_path: Path, postgres_database: str
) -> None:
    run = run_sandbox(tmp_path, "--exit-when-running", "--database-url", postgres_database)

    assert run.code == 0, run.explain()
    assert phases_printed(run.stdout, f"default/{SAMPLE}") == TIMELINE
    assert "event log   postgresql" in run.stdout
    [stream] = streams_of(read_log(postgres_database), SAMPLE)
    assert phases_in_log(stream) == TIMELINE
    assert not (tmp_path / ".modeladapter" / "events.db").exists(), "the SQLite log was written as well"


def test_the_database_url_environment_variable_chooses_the_log_too(tmp_path: Path, postgres_database: str) -> None:
    state_dir = tmp_path / "state"
    run = run_sandbox(tmp_path, "--exit-when-running", "--state-dir", str(state_dir),
                      env={"MODELADAPTER_DATABASE_URL": postgres_database})  # fmt: skip

    assert run.code == 0, run.explain()
    assert streams_of(read_log(postgres_database), SAMPLE)
    assert (state_dir / "kubeconfig").is_file() and not (state_dir / "events.db").exists()
