"""What a real operator serves at /metrics passes `promtool check metrics` without a word: every counter ends in
`_total`, every family has its HELP, units are base units. The operator runs in-process against the API
emulator, leading its Lease, after loads that succeeded, failed retriably and failed for good, so that every
labelled family has series. It also has controller-runtime's standard families, with their labels.

promtool comes from `.ci/prepare/50-promtool` (unpacked from Debian's `prometheus` package); without it the
test fails and says so, it never skips."""

from __future__ import annotations

import asyncio
import subprocess

import httpx
from prometheus_client.parser import text_string_to_metric_families

from modeladapter.operator.controller.running import Operator
from modeladapter.operator.controller.settings import OperatorSettings
from modeladapter.sandbox.engine.faults import Fault
from tests.e2e.conftest import Sandbox, adapter_manifest, free_port
from tests.promtool import promtool

STANDARD_FAMILIES = {
    "controller_runtime_reconcile_total": {"controller", "result"},
    "controller_runtime_reconcile_errors_total": {"controller"},
    "controller_runtime_reconcile_time_seconds_count": {"controller"},
    "controller_runtime_active_workers": {"controller"},
    "controller_runtime_max_concurrent_reconciles": {"controller"},
    "workqueue_depth": {"name", "controller"},
    "workqueue_adds_total": {"name", "controller"},
    "workqueue_retries_total": {"name", "controller"},
    "workqueue_queue_duration_seconds_count": {"name", "controller"},
    "workqueue_work_duration_seconds_count": {"name", "controller"},
    "workqueue_unfinished_work_seconds": {"name", "controller"},
    "workqueue_longest_running_processor_seconds": {"name", "controller"},
    "leader_election_master_status": {"name"},
    "modeladapter_build_info": {"version", "python_version"},
    "modeladapter_adapter_phase": {"namespace", "adapter", "phase"},
    "modeladapter_load_duration_seconds_count": {"outcome"},
}


async def scrape(port: int) -> str:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    answer.raise_for_status()
    return answer.text


def values(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


async def test_a_running_operators_metrics_pass_promtool_and_carry_controller_runtimes_families(
    sandbox: Sandbox,
) -> None:
    tool = promtool()
    pods = await sandbox.add_pods(2)
    port = free_port()
    settings = OperatorSettings(
        kubeconfig=sandbox.kubeconfig,
        database_url=sandbox.database_url,
        identity="operator-metrics",
        lease_namespace="default",
        lease_duration=3.0,
        renew_deadline=2.0,
        retry_period=0.5,
        stability_window=0.0,
        drain_seconds=0.0,
        backoff_base=0.05,
        verify_interval=0.3,
        probe_address=f"127.0.0.1:{port}",
    )
    operator = Operator(settings)
    task = asyncio.create_task(operator.run())
    try:
        # Each pod fails its first load retriably (a 503), then loads: `served` reaches Running on both.
        for pod in pods:
            sandbox.engine(pod).inject(Fault(status=503), route="load", times=1)
        await sandbox.apply(adapter_manifest("served", replicas=2))
        await sandbox.phase("Running", "served", timeout=20)
        # Both refuse the next adapter's key (a 401 is not worth a retry): `refused` fails on both pods.
        for pod in pods:
            sandbox.engine(pod).inject(Fault(status=401), route="load", times=None)
        await sandbox.apply(adapter_manifest("refused", replicas=1))
        await sandbox.phase("Failed", "refused", timeout=20)

        text = await scrape(port)
        checked = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        assert (checked.returncode, checked.stdout + checked.stderr) == (0, ""), text

        found = values(text)
        for name, labels in STANDARD_FAMILIES.items():
            assert name in found, f"{name} is not exported"
            assert all(set(sample_labels) == labels for sample_labels, _ in found[name]), (name, found[name])
        loads = {labels["outcome"]: value for labels, value in found["modeladapter_load_duration_seconds_count"]}
        assert loads["succeeded"] >= 2 and loads["failed_retriable"] >= 2 and loads["failed"] >= 1, loads
        assert found["leader_election_master_status"] == [({"name": "modeladapter-operator"}, 1.0)]
        phases = {labels["adapter"]: labels["phase"] for labels, _ in found["modeladapter_adapter_phase"]}
        assert phases == {"served": "Running", "refused": "Failed"}
        results = {labels["result"]: value for labels, value in found["controller_runtime_reconcile_total"]}
        assert set(results) == {"success", "error", "requeue", "requeue_after"} and results["requeue_after"] >= 1
    finally:
        operator.stop()
        async with asyncio.timeout(20):
            await task
