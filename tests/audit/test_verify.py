"""`modeladapter verify`: fold every stream, compare with the cluster's ModelAdapters, print drift and exit 1 on any."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modeladapter.fsm.events import PhaseChanged, SpecObserved
from modeladapter.fsm.phases import Phase
from modeladapter.operator.kube.client import MODELADAPTERS, Kube
from tests.audit.conftest import (
    MODELADAPTER,
    Databases,
    LiveSandbox,
    ProducedLog,
    Result,
    Run,
    append_events,
    copy_log,
    sandbox_environment,
)


def _verify(modeladapter: Run, log: ProducedLog, *argv: str, database_url: str | None = None) -> Result:
    return modeladapter(
        "verify", "--database-url", database_url or log.database_url, "--kubeconfig", str(log.kubeconfig), *argv
    )


def _drifts(result: Result) -> list[dict[str, Any]]:
    assert result.code == 1 and result.err == "", (result.code, result.err)
    document = json.loads(result.out)
    assert document["in_sync"] is False
    drifts: list[dict[str, Any]] = document["drifts"]
    return drifts


def _live_streams(log: ProducedLog, namespace: str | None = None) -> int:
    async def count(store):
        return sum(1 for s in await store.streams(namespace=namespace) if s.finalized_at is None)

    return log.store(count)


@contextlib.contextmanager
def _status_changed(log: ProducedLog, name: str, change: dict[str, Any], namespace: str = "default") -> Iterator[None]:
    """The adapter's status merge-patched with `change`, as if someone wrote it behind the operator's back; restored after."""

    async def read(kube: Kube) -> dict[str, Any]:
        return copy.deepcopy((await kube.get(MODELADAPTERS, namespace, name))["status"])

    async def patch(kube: Kube, status: dict[str, Any]) -> None:
        await kube.patch(MODELADAPTERS, namespace, name, {"status": status}, subresource="status")

    original = log.cluster(read)
    log.cluster(lambda kube: patch(kube, change))
    try:
        yield
    finally:
        log.cluster(lambda kube: patch(kube, {key: original.get(key) for key in change}))
        assert log.cluster(read) == original


# --- in sync --------------------------------------------------------------------------------------------------


def test_a_cluster_the_operator_left_behind_matches_its_log(produced_log: ProducedLog, modeladapter: Run) -> None:
    result = _verify(modeladapter, produced_log, "-A", "-o", "json")
    assert result.code == 0 and result.err == ""
    assert json.loads(result.out) == {"adapters_checked": _live_streams(produced_log), "in_sync": True, "drifts": []}
    table = _verify(modeladapter, produced_log, "-A")
    assert (
        table.code == 0
        and table.out == f"no drift: {_live_streams(produced_log)} adapter(s) in the cluster match the event log\n"
    )


def test_the_namespace_scopes_what_is_compared(produced_log: ProducedLog, modeladapter: Run) -> None:
    for argv, namespace in ((("-n", "team-b"), "team-b"), ((), "default")):
        result = _verify(modeladapter, produced_log, *argv, "-o", "json")
        assert result.code == 0 and json.loads(result.out)["adapters_checked"] == _live_streams(produced_log, namespace)


# --- drift ----------------------------------------------------------------------------------------------------


def test_a_status_written_behind_the_operators_back_is_drift_naming_adapter_and_field(
    produced_log: ProducedLog, modeladapter: Run
) -> None:
    healthy = produced_log.chaos_pods["healthy"]
    with _status_changed(produced_log, "chaos", {"phase": "Failed", "instances": []}):
        drifts = _drifts(_verify(modeladapter, produced_log, "-o", "json"))
        by_field = {d["field"]: d for d in drifts}
        assert {d["name"] for d in drifts} == {"chaos"} and {"phase", "instances"} <= set(by_field)
        assert (by_field["phase"]["log"], by_field["phase"]["cluster"]) == ("Running", "Failed")
        assert (by_field["instances"]["log"], by_field["instances"]["cluster"]) == ([healthy], [])
        table = _verify(modeladapter, produced_log)
        assert table.code == 1 and table.err == ""
        rows = [line.split() for line in table.out.splitlines()]
        assert ["default/chaos", "phase", "Running", "Failed"] in rows
        assert ["default/chaos", "instances", f"[{healthy}]", "[]"] in rows
        assert table.out.splitlines()[-1].startswith(f"{len(drifts)} drift(s) on 1 adapter(s)")
        assert _verify(modeladapter, produced_log, "-n", "team-b").code == 0, "another namespace is not affected"
    assert _verify(modeladapter, produced_log).code == 0, "restored: in sync again"


def test_a_condition_that_says_something_else_is_drift(produced_log: ProducedLog, modeladapter: Run) -> None:
    async def conditions(kube: Kube) -> list[dict[str, Any]]:
        return list((await kube.get(MODELADAPTERS, "default", "clean"))["status"]["conditions"])

    wrong = [dict(c, message="all is lost") if c["type"] == "Ready" else c for c in produced_log.cluster(conditions)]
    with _status_changed(produced_log, "clean", {"conditions": wrong}):
        (drift,) = _drifts(_verify(modeladapter, produced_log, "-o", "json"))
        assert (drift["name"], drift["field"]) == ("clean", "conditions[Ready]")
        assert (
            drift["log"]["message"] == "ModelAdapter default/clean is ready"
            and drift["cluster"]["message"] == "all is lost"
        )


def test_an_adapter_only_in_the_cluster_is_drift(produced_log: ProducedLog, modeladapter: Run) -> None:
    manifest = {
        "apiVersion": "model.aibrix.ai/v1alpha1",
        "kind": "ModelAdapter",
        "metadata": {"name": "intruder", "namespace": "team-b"},
        "spec": {"podSelector": {"matchLabels": {"app": "x"}}, "artifactURL": "huggingface://org/intruder"},
    }
    produced_log.cluster(lambda kube: kube.create(MODELADAPTERS, "team-b", manifest))
    try:
        (drift,) = _drifts(_verify(modeladapter, produced_log, "-A", "-o", "json"))
        assert (drift["namespace"], drift["name"], drift["field"], drift["log"]) == (
            "team-b",
            "intruder",
            "adapter",
            None,
        )
        assert "in the cluster but not in the log" in drift["note"]
    finally:
        produced_log.cluster(lambda kube: kube.delete(MODELADAPTERS, "team-b", "intruder"))
    assert _verify(modeladapter, produced_log, "-A").code == 0


def test_an_adapter_only_in_the_log_is_drift(
    produced_log: ProducedLog, modeladapter: Run, databases: Databases
) -> None:
    url = copy_log(produced_log.database_url, databases)
    ghost = str(uuid.uuid4())
    observed = SpecObserved(generation=1, artifact_url="huggingface://org/ghost", replicas=1,
                            scheduler_name="default", pod_selector="app=ghost")  # fmt: skip
    pending = PhaseChanged(from_phase=None, to_phase=Phase.PENDING, trigger="created",
                           reason="ModelAdapterPending", message="Starting reconciliation")  # fmt: skip
    asyncio.run(append_events(url, ghost, [observed, pending], namespace="default", name="ghost"))
    (drift,) = _drifts(_verify(modeladapter, produced_log, "-o", "json", database_url=url))
    assert (drift["name"], drift["uid"], drift["field"], drift["cluster"]) == ("ghost", ghost, "adapter", None)
    assert (
        drift["log"] == "phase Pending, version 2"
        and "in the log (not finalized) but not in the cluster" in drift["note"]
    )


# --- against a running `modeladapter sandbox --chaos` ---------------------------------------------------------


def test_a_running_chaos_sandbox_has_no_drift_and_stops_on_ctrl_c(
    databases: Databases, modeladapter: Run, tmp_path: Path
) -> None:
    sandbox = LiveSandbox(tmp_path / "state", databases.new())
    sandbox.start()
    try:
        verified = subprocess.run(
            [MODELADAPTER, "verify", "--kubeconfig", str(sandbox.kubeconfig), "--database-url", sandbox.database_url],
            capture_output=True, text=True, env=sandbox_environment(), timeout=60,
        )  # fmt: skip
        as_json = modeladapter("verify", "--kubeconfig", str(sandbox.kubeconfig), "--database-url", sandbox.database_url,
                               "-A", "-o", "json")  # fmt: skip
    finally:
        code = sandbox.interrupt()
    assert (verified.returncode, verified.stderr) == (0, ""), verified.stdout
    assert verified.stdout == "no drift: 1 adapter(s) in the cluster match the event log\n"
    assert (as_json.code, json.loads(as_json.out)) == (0, {"adapters_checked": 1, "in_sync": True, "drifts": []})
    assert code == 0 and any(line.startswith("stopping; the event log") for line in sandbox.lines)
    assert any("chaos: deleting pod" in line for line in sandbox.lines), "the chaos play ran before verify"
