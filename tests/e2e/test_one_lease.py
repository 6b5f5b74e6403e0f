"""One Lease however the operator is started: the in-cluster operator and a laptop `modeladapter run` never both act.

The in-cluster operator takes its Lease namespace from `POD_NAMESPACE` (the Deployment's downward API); a run
outside a pod has none and defaults to the install's namespace, `modeladapter-system`, so both campaign for
`modeladapter-system/modeladapter-operator`. Neither is given `--lease-namespace` here.
"""

from __future__ import annotations

from modeladapter.operator.kube.client import LEASES, NotFound, Raw, Resource
from modeladapter.operator.kube.manifests import DEFAULT_NAMESPACE
from tests.e2e.conftest import OperatorProcess, Sandbox, adapter_manifest

NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
LEASE = "modeladapter-operator"
RECONCILES = "modeladapter_reconcile_duration_seconds_count"


async def _install_namespace(sandbox: Sandbox) -> None:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": DEFAULT_NAMESPACE}}
    await sandbox.kube.create(NAMESPACES, None, body)


async def _lease(sandbox: Sandbox) -> Raw:
    return await sandbox.kube.get(LEASES, DEFAULT_NAMESPACE, LEASE)


async def _held_by(sandbox: Sandbox, identity: str) -> bool:
    try:
        return bool((await _lease(sandbox))["spec"].get("holderIdentity") == identity)
    except NotFound:
        return False


async def _serving_metrics(process: OperatorProcess) -> bool:
    try:
        await process.metric(RECONCILES)
    except Exception:  # not serving /metrics yet
        return False
    return True


def _in_cluster(sandbox: Sandbox) -> OperatorProcess:
    return sandbox.spawn_operator(identity="in-cluster", lease_namespace=None, pod_namespace=DEFAULT_NAMESPACE)


def _laptop(sandbox: Sandbox) -> OperatorProcess:
    return sandbox.spawn_operator(identity="laptop", lease_namespace=None)


async def test_a_laptop_run_waits_as_a_standby_while_the_in_cluster_operator_leads(sandbox: Sandbox) -> None:
    await _install_namespace(sandbox)
    await sandbox.add_pods(1)
    in_cluster = _in_cluster(sandbox)
    await sandbox.eventually(
        lambda: _held_by(sandbox, "in-cluster"), timeout=20, what="the in-cluster operator to lead"
    )
    laptop = _laptop(sandbox)
    await sandbox.eventually(lambda: _serving_metrics(laptop), timeout=20, what="the laptop operator's /metrics")
    await sandbox.apply(adapter_manifest(replicas=1))
    await sandbox.phase("Running", timeout=20)

    assert await in_cluster.metric(RECONCILES) > 0, "the leader acted"
    assert await laptop.metric(RECONCILES) == 0, "the laptop run campaigned for the same Lease and did nothing"
    assert await _held_by(sandbox, "in-cluster")
    try:
        await sandbox.kube.get(LEASES, "default", LEASE)
    except NotFound:
        pass
    else:
        raise AssertionError("a Lease in `default`: the laptop run campaigned for a Lease of its own")


async def test_the_laptop_run_takes_over_the_same_lease_when_the_in_cluster_operator_dies(sandbox: Sandbox) -> None:
    await _install_namespace(sandbox)
    await sandbox.add_pods(2)
    in_cluster = _in_cluster(sandbox)
    await sandbox.eventually(
        lambda: _held_by(sandbox, "in-cluster"), timeout=20, what="the in-cluster operator to lead"
    )
    laptop = _laptop(sandbox)
    await sandbox.apply(adapter_manifest("first", replicas=1))
    await sandbox.phase("Running", "first", timeout=20)
    in_cluster.kill()

    await sandbox.apply(adapter_manifest("second", replicas=1))
    await sandbox.phase("Running", "second", timeout=20)
    lease = await _lease(sandbox)
    assert lease["spec"]["holderIdentity"] == "laptop"
    assert lease["spec"]["leaseTransitions"] >= 1, "the laptop took over the in-cluster operator's Lease"
    assert await laptop.metric(RECONCILES) > 0
