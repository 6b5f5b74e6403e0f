"""`verify --engines` asks the engines what they serve: an engine that lost an adapter the log says is loaded,
and one that still serves a deleted adapter, are drifts; the keyed engines are asked with the key of the Secret
the log recorded. An adapter forced off while the operator was away is unloaded with that key when it returns."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from modeladapter.operator.audit.drifts import Drift
from modeladapter.operator.audit.verifying import verify
from modeladapter.operator.kube.client import MODELADAPTERS, SECRETS
from modeladapter.store import SqlEventStore
from tests.e2e.conftest import FAST, Sandbox, adapter_manifest
from tests.reliability.test_security import secret

KEY = "sk-verify-engines-0123456789"
NAME = "qwen-code-lora"


async def engine_drifts(sandbox: Sandbox, store: SqlEventStore) -> list[Drift]:
    result = await verify(store, sandbox.kube, namespace="default", now=datetime.now(UTC), engines=True)
    return [d for d in result.drifts if d.field.startswith("engine[")]


async def test_engines_that_lost_or_still_serve_an_adapter_are_drifts_until_the_operator_mends_them(
    sandbox: Sandbox,
) -> None:
    pods = await sandbox.add_pods(2)
    for pod in pods:
        sandbox.engine(pod).api_key = KEY
    await sandbox.kube.create(SECRETS, "default", secret("engine-key", {"api-key": KEY}))
    running = await sandbox.start_operator(replace(FAST, verify_interval=timedelta(minutes=10)))
    manifest = adapter_manifest(replicas=2)
    manifest["spec"]["apiKeySecretRef"] = {"name": "engine-key"}
    await sandbox.apply(manifest)
    await sandbox.eventually(lambda: sandbox.ready(2), what="Running on both pods")
    assert await engine_drifts(sandbox, running.store) == []

    assert sandbox.engine(pods[0]).unload_by_another_client(NAME)
    lost = await engine_drifts(sandbox, running.store)
    assert [(d.field, d.log, d.cluster) for d in lost] == [(f"engine[{pods[0]}]", "loaded", "not listed")]

    # The operator goes away; someone removes the finalizer and deletes the adapter: pod-1 keeps serving it.
    await running.stop()
    await sandbox.kube.patch(MODELADAPTERS, "default", NAME, {"metadata": {"finalizers": None}})
    await sandbox.delete()
    await sandbox.eventually(sandbox.gone, what="the adapter to be gone")
    kept = await engine_drifts(sandbox, running.store)
    assert [(d.field, d.cluster) for d in kept] == [(f"engine[{pods[1]}]", "still served")]
    assert kept[0].log == "deleted: unloaded from every pod"

    # Back, the operator unloads it with the recorded key (the engines refuse any other).
    back = await sandbox.start_operator()
    await sandbox.eventually(lambda: sandbox.lacks(pods[1]), what="the deleted adapter to be unloaded")
    assert await engine_drifts(sandbox, back.store) == []
