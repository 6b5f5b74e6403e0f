"""Small event logs written directly (no operator), for the tests of what the audit commands do to and with a log.

`write_log` records three adapters whose events fold (every command answers on it); `damage` runs SQL on a log
behind the store's back; `leave_wal` appends through the store in a child process that then stays up or dies,
so that the log has a `-wal` (and `-shm`) with commits that are not in the main file yet; `immutable` makes a
directory refuse every write, even root's; `file_digests` is what "unchanged" is checked against.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from modeladapter import migrations
from modeladapter.fsm.events import (
    AdapterEvent,
    Finalized,
    LoadFailed,
    LoadStarted,
    LoadSucceeded,
    PhaseChanged,
    PlacementChanged,
    PodSelected,
    ServiceBound,
    SpecObserved,
    stamp,
)
from modeladapter.fsm.phases import Phase, PlacementState
from modeladapter.store import SqlEventStore, create_engine

ARTIFACT = "huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora"
STARTED = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
"""When the first event of `write_log` was recorded; each batch is a minute after the one before."""


def _phase(source: Phase | None, target: Phase, trigger: str, reason: str = "") -> PhaseChanged:
    return PhaseChanged(
        from_phase=source, to_phase=target, trigger=trigger, reason=reason or trigger, message=f"now {target.value}"
    )


def _placement(pod: str, source: PlacementState | None, target: PlacementState, trigger: str) -> PlacementChanged:
    return PlacementChanged(pod=pod, from_state=source, to_state=target, trigger=trigger)


def _spec() -> SpecObserved:
    return SpecObserved(generation=1, artifact_url=ARTIFACT, replicas=1, scheduler_name="default",
                        pod_selector="model.aibrix.ai/name=qwen")  # fmt: skip


def chaos_batches() -> list[list[AdapterEvent]]:
    """default/chaos: selected, a failed load on pod-a, loaded at the second attempt, Running (versions 1..17)."""
    loading, backoff = PlacementState.LOADING, PlacementState.BACKOFF
    return [
        [_spec(), _phase(None, Phase.PENDING, "created"), PodSelected(pod="pod-a", policy="least-adapters"),
         _placement("pod-a", None, PlacementState.ASSIGNED, "selected"),
         _phase(Phase.PENDING, Phase.SCHEDULED, "pods_selected"),
         _placement("pod-a", PlacementState.ASSIGNED, loading, "load_started"),
         LoadStarted(pod="pod-a", attempt=1, artifact_url=ARTIFACT),
         _phase(Phase.SCHEDULED, Phase.LOADING, "load_started")],
        [LoadFailed(pod="pod-a", attempt=1, error="EngineUnavailable: 503", retriable=True,
                    retry_at=STARTED + timedelta(minutes=1, seconds=5)),
         _placement("pod-a", loading, backoff, "load_failed")],
        [_placement("pod-a", backoff, loading, "retry_due"), LoadStarted(pod="pod-a", attempt=2, artifact_url=ARTIFACT),
         LoadSucceeded(pod="pod-a", attempt=2, duration_ms=12.5),
         _placement("pod-a", loading, PlacementState.LOADED, "load_succeeded"),
         _phase(Phase.LOADING, Phase.BOUND, "load_verified"),
         ServiceBound(service="chaos", endpoints=("10.0.0.1:8000",)),
         _phase(Phase.BOUND, Phase.RUNNING, "service_bound")],
    ]  # fmt: skip


def write_log(database_url: str) -> str:
    """Migrate the empty database at `database_url` and record default/chaos (Running), team-b/waiting (Pending)
    and default/gone (deleted); the URL back."""
    streams: list[tuple[str, str, str, list[list[AdapterEvent]]]] = [
        ("uid-chaos", "default", "chaos", chaos_batches()),
        ("uid-waiting", "team-b", "waiting",
         [[_spec(), _phase(None, Phase.PENDING, "created", "NoCandidatePods")]]),
        ("uid-gone", "default", "gone",
         [[_spec(), _phase(None, Phase.PENDING, "created")], [_phase(Phase.PENDING, Phase.TERMINATING, "deleted")],
          [Finalized()]]),
    ]  # fmt: skip

    async def write() -> None:
        engine = create_engine(database_url)
        try:
            await migrations.upgrade(engine)
        finally:
            await engine.dispose()
        store = SqlEventStore(create_engine(database_url))
        try:
            minute = 0
            for stream_id, namespace, name, batches in streams:
                for batch in batches:
                    version = await store.last_version(stream_id)
                    at = STARTED + timedelta(minutes=minute)
                    await store.append(stream_id, stamp(batch, at=at, observed_generation=1),
                                       expected_version=version, namespace=namespace, name=name)  # fmt: skip
                    minute += 1
        finally:
            await store.close()

    asyncio.run(write())
    return database_url


def damage(database_url: str, *statements: str, **parameters: Any) -> None:
    """Run `statements` on the log behind the store's back, as a hand edit or a broken restore would."""

    async def run() -> None:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as connection:
                for statement in statements:
                    await connection.execute(text(statement), parameters)
        finally:
            await engine.dispose()

    asyncio.run(run())


def sqlite_path(database_url: str) -> Path:
    return Path(make_url(database_url).database or "")


# --- a log with a live WAL --------------------------------------------------------------------------------------

_APPENDER = textwrap.dedent(
    """
    import asyncio, os, sys
    from datetime import UTC, datetime
    from modeladapter.fsm.events import PhaseChanged, stamp
    from modeladapter.fsm.phases import Phase
    from modeladapter.store import SqlEventStore, create_engine

    async def main(url, how):
        store = SqlEventStore(create_engine(url))
        created = PhaseChanged(from_phase=None, to_phase=Phase.PENDING, trigger="created", reason="created",
                               message="now Pending")
        await store.append("uid-walonly", stamp([created], at=datetime.now(UTC)), expected_version=0,
                           namespace="default", name="walonly")
        if how == "dies":
            os._exit(0)  # as a killed operator: nothing closed, nothing checkpointed
        print("appended", flush=True)
        sys.stdin.read()  # stays up, connection open, until the test closes our stdin
        await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


@contextmanager
def leave_wal(database_url: str, *, writer: str) -> Iterator[None]:
    """Append default/walonly in a child process that then `stays` (an operator running) or `dies` (killed).

    Either way the append is committed in `-wal` and not yet in the main file, and `-shm` indexes it. The
    writer must be another process: connections of one process share one mapping of `-shm`, so a reader in the
    writer's process could not keep its hands off it.
    """
    process = subprocess.Popen([sys.executable, "-c", _APPENDER, database_url, writer],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert process.stdin is not None and process.stdout is not None
        if writer == "dies":
            assert process.wait(60) == 0
        else:
            assert process.stdout.readline() == "appended\n"
        yield
    finally:
        if process.poll() is None:
            assert process.stdin is not None
            process.stdin.close()
            process.wait(60)


def file_digests(directory: Path) -> dict[str, str]:
    """Every file in `directory` by name, with the SHA-256 of its bytes."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(directory.iterdir())}


# --- a directory nobody can write to ----------------------------------------------------------------------------


@contextmanager
def immutable(directory: Path) -> Iterator[None]:
    """`directory` and its files refuse every write, as on a read-only mount, for root too.

    Not root: permissions (a-w). Root ignores those, so for root the files and the directory get the immutable
    attribute (`chattr +i`, which a read-only mount behaves like: EPERM on any write, create or delete).
    """
    paths = [*directory.iterdir(), directory]
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", *map(str, paths)], check=True, capture_output=True)
    else:
        modes = {path: path.stat().st_mode for path in paths}
        for path in paths:
            path.chmod(modes[path] & ~0o222)
    try:
        probe = directory / "probe"
        try:
            probe.touch()
        except OSError:
            pass
        else:
            probe.unlink()
            raise AssertionError(f"{directory} still takes new files; cannot test a read-only directory here")
        yield
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", *map(str, paths)], check=True, capture_output=True)
        else:
            for path, mode in modes.items():
                path.chmod(mode)
