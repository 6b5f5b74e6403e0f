"""The `modeladapter` command's schema commands (`db upgrade`, `db current`), its plugin name, and bad input."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from modeladapter import migrations
from modeladapter.fsm import Phase, fold
from modeladapter.operator.cli.main import main
from modeladapter.store import SqlEventStore, create_engine


def read_streams(url: str) -> list[tuple[str, int, Phase | None, tuple[str, ...]]]:
    async def read() -> list[tuple[str, int, Phase | None, tuple[str, ...]]]:
        store = SqlEventStore(create_engine(url))
        try:
            states = [fold(await store.read(s.stream_id)) for s in await store.streams()]
            return [(f"{s.namespace}/{s.name}", s.pod_switches, s.phase, s.instances) for s in states]
        finally:
            await store.close()

    return asyncio.run(read())


def test_db_upgrade_then_current(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/events.db"
    assert main(["db", "current", "--database-url", url]) == 0
    assert capsys.readouterr().out.strip() == "(empty database)"
    assert main(["db", "upgrade", "--database-url", url]) == 0
    assert capsys.readouterr().out.strip() == migrations.head_revision()


def test_an_unsupported_database_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade", "--database-url", "mysql://root@localhost/test"]) == 2
    assert "unsupported database 'mysql'" in capsys.readouterr().err


def test_a_database_from_a_newer_version_is_refused_and_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/events.db"
    assert main(["db", "upgrade", "--database-url", url]) == 0

    async def from_the_future() -> None:
        engine = create_engine(url)
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
        await engine.dispose()

    asyncio.run(from_the_future())
    capsys.readouterr()
    assert main(["db", "upgrade", "--database-url", url]) == 2
    assert "'9999_future'" in capsys.readouterr().err
    assert read_streams(url) == []


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("postgresql://modeladapter:s3cret@127.0.0.1:1/test", id="nothing-listening"),
        pytest.param("postgresql://no_such_role:s3cret@127.0.0.1:5432/test", id="unknown-role"),
    ],
)
def test_an_unusable_database_is_a_clear_error_that_never_prints_the_password(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "current", "--database-url", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modeladapter: cannot use the event log postgresql://")
    assert "s3cret" not in err and "***" in err


def test_bad_arguments_exit_with_status_2() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["no-such-command"])
    assert exited.value.code == 2


def test_the_kubectl_plugin_name_runs_the_same_command(tmp_path: Path) -> None:
    plugin = Path(sys.executable).parent / "kubectl-modeladapter"
    result = subprocess.run(
        [str(plugin), "db", "upgrade", "--database-url", f"sqlite:///{tmp_path}/events.db"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == migrations.head_revision()
