"""The chaos soak's invariant checkers can fail: each is shown a world that breaks its invariant.

A soak that reports 0 violations is only worth something if its checks would have seen one. These tests build
the soak's world by hand (the API emulator, the soak's pods and engines without HTTP, an empty event log) and
break one invariant at a time; no operator runs.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes_asyncio import client, config
from sqlalchemy import text

from modeladapter.fsm.events import PhaseChanged, ServiceBound, stamp
from modeladapter.fsm.phases import Phase
from modeladapter.operator.kube.client import MODELADAPTERS, Kube
from modeladapter.operator.kube.manifests import modeladapter_crd
from modeladapter.sandbox.apiserver import ApiServer
from modeladapter.sandbox.engine.adapter_files import write_peft_adapter
from tests.e2e.conftest import OperatorProcess
from tests.reliability.soak import (
    ARTIFACTS,
    BASE_LABELS,
    LOAD_PATH,
    UNLOAD_PATH,
    AdapterRecord,
    Soak,
    SoakConfig,
)


@pytest.fixture
async def soak(tmp_path: Path) -> AsyncIterator[Soak]:
    world = Soak(SoakConfig(seed=1, chaos_seconds=0, backend="sqlite"), tmp_path)
    await world._open_database()
    async with ApiServer() as server:
        server.seed(modeladapter_crd())
        world.server = server
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        cfg = client.Configuration()
        await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        async with client.ApiClient(cfg) as api:
            world.kube = Kube(api)
            world._make_slots(
                {ARTIFACTS[0].removeprefix("huggingface://"): write_peft_adapter(tmp_path / "a")}, "127.9.9"
            )
            for slot in world.slots:
                slot.present = slot.engine.pod_present = True
            yield world
    await world._close_database()


def pool_a_adapter(name: str = "d-lora-001") -> AdapterRecord:
    record = AdapterRecord(name, "default", {**BASE_LABELS, "pool": "a"}, 1, ARTIFACTS[0], "default")
    record.selectors_ever.append(dict(record.selector))
    record.exists = True
    return record


def slot(soak: Soak, name: str):  # type: ignore[no-untyped-def]
    return next(s for s in soak.slots if s.name == name)


async def test_an_engine_call_to_a_pod_the_adapter_did_not_select_is_a_violation(soak: Soak) -> None:
    record = pool_a_adapter()
    soak.records[record.name] = record
    for pod in ("qwen-coder-1-5b-instruct-0", "qwen-coder-1-5b-instruct-3"):  # pool a
        soak.on_engine_request(slot(soak, pod).engine, LOAD_PATH, record.name)
    assert soak.violations == []
    soak.on_engine_request(slot(soak, "qwen-coder-1-5b-instruct-4").engine, LOAD_PATH, record.name)  # pool b
    soak.on_engine_request(slot(soak, "llama-3-8b-instruct-0").engine, LOAD_PATH, record.name)  # another model
    soak.on_engine_request(slot(soak, "qwen-coder-1-5b-instruct-b0").engine, UNLOAD_PATH, record.name)  # team-b
    assert [v.invariant[0] for v in soak.violations] == ["6", "6", "6"]
    assert "another namespace" in soak.violations[2].detail
    # After a selector change, unloading from the pods the old selector matched is what the operator must do.
    record.selector = {**BASE_LABELS, "pool": "b"}
    record.selectors_ever.append(dict(record.selector))
    soak.on_engine_request(slot(soak, "qwen-coder-1-5b-instruct-0").engine, UNLOAD_PATH, record.name)
    assert len(soak.violations) == 3


async def test_running_without_a_logged_verified_instance_is_a_violation(soak: Soak) -> None:
    record = pool_a_adapter()
    soak.records[record.name] = record
    pod = "qwen-coder-1-5b-instruct-0"
    slot(soak, pod).engine.load(record.name, ARTIFACTS[0].removeprefix("huggingface://"))
    await soak.kube.create(MODELADAPTERS, "default", record.manifest())
    status = {"phase": "Running", "instances": [pod], "readyReplicas": 1}
    await soak.kube.patch(MODELADAPTERS, "default", record.name, {"status": status}, subresource="status")
    await soak._check_cluster()
    assert [v.invariant[0] for v in soak.violations] == ["1"], soak.violations
    assert "no prefix of its log" in soak.violations[0].detail
    status = {"phase": "Running", "instances": [], "readyReplicas": 0}
    await soak.kube.patch(MODELADAPTERS, "default", record.name, {"status": status}, subresource="status")
    await soak._check_cluster()
    assert [v.invariant[0] for v in soak.violations] == ["1", "1"]


async def test_an_instance_the_engine_does_not_list_is_a_violation_once_stale(soak: Soak) -> None:
    record = pool_a_adapter()
    soak.records[record.name] = record
    await soak.kube.create(MODELADAPTERS, "default", record.manifest())
    status = {"phase": "Bound", "instances": ["qwen-coder-1-5b-instruct-1"], "readyReplicas": 1}
    await soak.kube.patch(MODELADAPTERS, "default", record.name, {"status": status}, subresource="status")
    await soak._check_cluster()
    assert soak.violations == [], "within the staleness budget (no operator has even run)"
    await soak._check_cluster(final=True)
    assert [v.invariant[0] for v in soak.violations] == ["2"]
    assert "engine does not list it" in soak.violations[0].detail


async def test_a_deleted_adapter_left_on_a_live_engine_is_a_violation(soak: Soak) -> None:
    record = pool_a_adapter()
    record.exists, record.ever_deleted = False, True
    soak.records[record.name] = record
    await soak._check_cluster()
    assert soak.violations == []
    slot(soak, "qwen-coder-1-5b-instruct-2").engine.load(record.name, ARTIFACTS[0].removeprefix("huggingface://"))
    await soak._check_cluster()
    assert [v.invariant[0] for v in soak.violations] == ["5"]


async def test_a_gap_in_a_stream_or_in_the_positions_is_a_violation(soak: Soak) -> None:
    events = stamp([ServiceBound(service="x", endpoints=("127.9.9.2",)), ServiceBound(service="x", endpoints=())],
                   at=datetime.now(UTC))  # fmt: skip
    await soak.store.append("uid-1", events, expected_version=0, namespace="default", name="x")
    await soak._check_log_sql()
    assert soak.violations == []
    async with soak.db.begin() as connection:
        await connection.execute(text("UPDATE adapter_streams SET version = 3"))
    await soak._check_log_sql()
    async with soak.db.begin() as connection:
        await connection.execute(text("UPDATE adapter_events SET position = 7 WHERE version = 2"))
    await soak._check_log_sql()
    assert [v.invariant[0] for v in soak.violations] == ["3", "3"], soak.violations


async def test_a_verify_drift_that_persists_is_a_violation(soak: Soak, tmp_path: Path) -> None:
    record = pool_a_adapter()
    soak.records[record.name] = record
    created = await soak.kube.create(MODELADAPTERS, "default", record.manifest())
    pending = PhaseChanged(from_phase=None, to_phase=Phase.PENDING, trigger="created", reason="Created", message="new")
    await soak.store.append(created["metadata"]["uid"], stamp([pending], at=datetime.now(UTC)), expected_version=0,
                            namespace="default", name=record.name)  # fmt: skip
    # The cluster says Running; the log says Pending: `modeladapter verify` reports a drift.
    status = {"phase": "Running", "instances": [], "readyReplicas": 0}
    await soak.kube.patch(MODELADAPTERS, "default", record.name, {"status": status}, subresource="status")
    soak.kubeconfig = tmp_path / "kubeconfig"
    operator_time = [0.0]
    soak.tick = lambda: operator_time[0]  # type: ignore[method-assign]
    await soak._check_verify()
    assert soak.violations == [], "a drift seen once may be the append-then-patch race"
    operator_time[0] = 30.0
    await soak._check_verify()
    assert soak.violations == [], "within the 39 s budget of operator time"
    operator_time[0] = 40.0
    await soak._check_verify()
    assert soak.violations and {v.invariant[0] for v in soak.violations} == {"4"}, soak.violations
    assert any("phase: log 'Pending', cluster 'Running'" in v.detail for v in soak.violations), soak.violations
    assert soak.verify_runs == {"exit 1": 3}


async def test_the_api_key_anywhere_in_the_output_of_the_run_is_a_violation(soak: Soak, tmp_path: Path) -> None:
    log_file = tmp_path / "soak-operator-1.log"
    log_file.write_text('{"level": "INFO", "message": "loaded"}\n')
    soak.processes = [OperatorProcess(subprocess.Popen(["true"]), 0, log_file)]
    soak.processes[0].process.wait()
    await soak.store.append("uid-1", stamp([ServiceBound(service="x", endpoints=())], at=datetime.now(UTC)),
                            expected_version=0, namespace="default", name="x")  # fmt: skip
    clean = await soak._check_secret_leaks(metrics="modeladapter_reconciles_total 3")
    assert soak.violations == [] and clean["leaks"] == 0
    assert {"soak-operator-1.log", "/metrics", "the event log", "Events", "ModelAdapters"} <= set(clean["places"])
    soak.server.seed({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1", "namespace": "default"},
                      "involvedObject": {"kind": "ModelAdapter", "name": "x", "namespace": "default"},
                      "reason": "LoadFailed", "message": f"engine said: bad key {soak.api_key}", "type": "Warning"})  # fmt: skip
    leaked = await soak._check_secret_leaks(metrics=f'modeladapter_info{{key="{soak.api_key}"}} 1')
    assert leaked["leaks"] == 2
    assert sorted(v.detail for v in soak.violations) == [
        "the engines' API key appears in /metrics",
        "the engines' API key appears in Events",
    ]
