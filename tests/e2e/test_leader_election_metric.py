"""`leader_election_master_status{name=<lease>}` says which replica acts: 1 on the leader, 0 on a standby, and
it moves with the Lease; a replica run without leader election acts alone and says 1. Two in-process operators
against the API emulator, with fast Lease timings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client.parser import text_string_to_metric_families

from modeladapter.operator.controller.running import Operator
from modeladapter.operator.controller.settings import OperatorSettings
from tests.e2e.conftest import Sandbox

LEASE = "modeladapter-operator"


def settings(sandbox: Sandbox, identity: str, *, leader_election: bool = True) -> OperatorSettings:
    return OperatorSettings(
        kubeconfig=sandbox.kubeconfig,
        database_url=sandbox.database_url,
        identity=identity,
        leader_election=leader_election,
        lease_namespace="default",
        lease_duration=3.0,
        renew_deadline=2.0,
        retry_period=0.2,
        probe_address="127.0.0.1:0",
    )


@asynccontextmanager
async def running(operator: Operator) -> AsyncIterator[Operator]:
    task = asyncio.create_task(operator.run())
    try:
        yield operator
    finally:
        operator.stop()
        async with asyncio.timeout(20):
            await task


def status(operator: Operator) -> dict[str, float]:
    """The operator's `leader_election_master_status` samples, by lease name."""
    return {
        sample.labels["name"]: sample.value
        for family in text_string_to_metric_families(operator.metrics.exposition().decode())
        for sample in family.samples
        if sample.name == "leader_election_master_status"
    }


async def test_the_leader_says_1_a_standby_0_and_the_standby_says_1_once_it_takes_over(sandbox: Sandbox) -> None:
    first = Operator(settings(sandbox, "operator-a"), probes=False)
    second = Operator(settings(sandbox, "operator-b"), probes=False)
    async with running(first):
        await sandbox.eventually(lambda: _says(first, 1.0), what="operator-a to lead")
        async with running(second):
            await sandbox.eventually(lambda: _says(second, 0.0), what="operator-b to campaign")
            assert status(first) == {LEASE: 1.0}
            first.stop()  # a clean stop releases the Lease, and the standby takes it at once
            await sandbox.eventually(lambda: _says(second, 1.0), what="operator-b to take over")


async def test_without_leader_election_a_replica_acts_alone_and_says_1(sandbox: Sandbox) -> None:
    alone = Operator(settings(sandbox, "operator-alone", leader_election=False), probes=False)
    async with running(alone):
        await sandbox.eventually(lambda: _says(alone, 1.0), what="the status")


async def _says(operator: Operator, value: float) -> bool:
    return status(operator) == {LEASE: value}
