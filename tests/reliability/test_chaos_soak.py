"""The chaos soak on both event-log backends (see `tests/reliability/soak.py` for the faults and the invariants).

In CI each backend runs `CI_SECONDS` of chaos plus the convergence (at most 60 s), well under 2.5 minutes. A
longer run, or a replay of a failure, by environment variable:

    MODELADAPTER_SOAK_SECONDS=600 .venv/bin/python -m pytest tests/reliability -s
    MODELADAPTER_SOAK_SEED=1234 .venv/bin/python -m pytest tests/reliability -k sqlite -s

The figures are printed (even without `-s`) and written to `soak-figures.json` in the test's tmp directory,
whose path is printed too.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.reliability.soak import Soak, SoakConfig

CI_SECONDS = 70.0
DEFAULT_SEED = 20261126


def soak_config(backend: str) -> SoakConfig:
    seconds = float(os.environ.get("MODELADAPTER_SOAK_SECONDS") or CI_SECONDS)
    seed = int(os.environ.get("MODELADAPTER_SOAK_SEED") or DEFAULT_SEED)
    overrides: dict[str, object] = {}
    if os.environ.get("MODELADAPTER_SOAK_P_TIMEOUT"):
        overrides["p_timeout"] = float(os.environ["MODELADAPTER_SOAK_P_TIMEOUT"])
    if os.environ.get("MODELADAPTER_SOAK_P_PROXY_TIMEOUT"):
        overrides["p_proxy_timeout"] = float(os.environ["MODELADAPTER_SOAK_P_PROXY_TIMEOUT"])
    if os.environ.get("MODELADAPTER_SOAK_CONCURRENCY"):
        overrides["concurrency"] = int(os.environ["MODELADAPTER_SOAK_CONCURRENCY"])
    if os.environ.get("MODELADAPTER_SOAK_AWAIT_COOLDOWNS"):
        overrides["await_cooldowns"] = os.environ["MODELADAPTER_SOAK_AWAIT_COOLDOWNS"] not in ("0", "false", "no")
    return SoakConfig(seed=seed, chaos_seconds=seconds, backend=backend, **overrides)


# The faults, then up to 60 s to converge, up to 300 s more of cool-downs if asked, and the set-up around them.
HANG_LIMIT = pytest.mark.hang_limit(soak_config("sqlite").chaos_seconds + 900)


async def run_soak(backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = soak_config(backend)
    with capsys.disabled():
        print(f"\nchaos soak on {backend}: seed {config.seed}, {config.chaos_seconds:g}s of faults", flush=True)
    report = await Soak(config, tmp_path / "soak").run()
    with capsys.disabled():
        print(report.summary(), flush=True)
    assert not report.violations, f"invariant violations (seed {config.seed}):\n{report.summary()}"
    assert report.converged_after is not None, f"did not converge within 60 s (seed {config.seed}):\n{report.summary()}"
    assert report.verify_exit == 0, report.verify_output


@HANG_LIMIT
async def test_chaos_soak_on_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await run_soak("sqlite", tmp_path, capsys)


@HANG_LIMIT
@pytest.mark.postgres
async def test_chaos_soak_on_postgresql(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await run_soak("postgres", tmp_path, capsys)
