"""Helpers for the reliability tests: an in-process cluster (tests/e2e/conftest.py's `Sandbox`) on a loopback
block of its own, so that it can run while other suites hold 127.0.0.2-7:8000.

`open_world(tmp_path, engines=4)` yields a `Sandbox` whose simulated engines and pod IPs start at a random
`127.X.Y.2` that was free to bind; it stops the operators it started and kills the processes it spawned.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config

from modeladapter import migrations
from modeladapter.operator.kube.client import Kube
from modeladapter.operator.kube.manifests import modeladapter_crd
from modeladapter.sandbox.apiserver import ApiServer
from modeladapter.sandbox.engine.adapter_files import write_peft_adapter
from modeladapter.sandbox.engine.fleet import EngineFleet
from modeladapter.sandbox.pods import SimulatedKubelet
from modeladapter.store import SqlEventStore, create_engine
from tests.e2e.conftest import ARTIFACT, Sandbox


def random_loopback_block() -> str:
    """`127.X.Y.2` for a random X.Y, away from 127.0.0.x where the other suites live."""
    return f"127.{random.randint(64, 250)}.{random.randint(1, 250)}.2"


async def start_fleet(count: int, **engine_options: Any) -> EngineFleet:
    """`count` simulated engines on port 8000 of a loopback block nobody else uses."""
    for _ in range(20):
        fleet = EngineFleet(count, first_ip=random_loopback_block(), **engine_options)
        try:
            return await fleet.start()
        except OSError:
            continue
    raise RuntimeError("no free loopback block for the simulated engines")


@asynccontextmanager
async def open_world(
    tmp_path: Path,
    *,
    engines: int = 4,
    database_url: str | None = None,
    hub: Mapping[str, Path] | None = None,
    server: ApiServer | None = None,
    **engine_options: Any,
) -> AsyncIterator[Sandbox]:
    """The emulator (`server`, not started yet, or a new one) with the CRD, `engines` simulated vLLM engines (no
    pods yet: `sandbox.add_pods`), a migrated event log (SQLite in `tmp_path` unless `database_url`), and no
    operator yet."""
    async with server or ApiServer() as server:
        server.seed(modeladapter_crd())
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        cfg = client.Configuration()
        await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        known = dict(hub) if hub is not None else {}
        known.setdefault(ARTIFACT.removeprefix("huggingface://"), write_peft_adapter(tmp_path / "hub" / "default"))
        fleet = await start_fleet(engines, hub=known, **engine_options)
        try:
            async with client.ApiClient(cfg) as api:
                url = database_url or f"sqlite:///{tmp_path}/events.db"
                engine = create_engine(url)
                await migrations.upgrade(engine)
                store = SqlEventStore(engine)
                first_ip = fleet.engines[0].host if fleet.engines else random_loopback_block()
                box = Sandbox(
                    server=server,
                    api=api,
                    kube=Kube(api),
                    kubelet=SimulatedKubelet(api, first_ip=first_ip),
                    fleet=fleet,
                    database_url=url,
                    kubeconfig=kubeconfig,
                    store=store,
                )
                try:
                    yield box
                finally:
                    for running in box.operators:
                        await running.stop()
                    for process in box.processes:
                        process.kill()
                    await store.close()
        finally:
            await fleet.stop()
