"""Every base of deploy/, as `modeladapter manifests` prints it, applies to the API emulator with kubectl 1.20
(from `.ci/prepare/20-kube-apiserver`; without it these tests fail, never skip), and applies again unchanged.
deploy/prometheus goes on after a minimal stand-in for the Prometheus Operator's CRDs
(fixtures/prometheus-operator-crds.yaml), whose schema leaves nothing of the ServiceMonitor or PrometheusRule
unpruned unless it is declared there with the right type. Two installs in two namespaces leave two
ClusterRoles and two ClusterRoleBindings, each bound to its own ServiceAccount.

They start servers on loopback: run them under `flock /tmp/modeladapter-sandbox.lock`."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeladapter.operator.kube.manifests import bases, operator_manifests, render_manifests
from modeladapter.sandbox.apiserver import ApiServer
from modeladapter.sandbox.realcluster import RealClusterUnavailable, binaries

JsonDict = dict[str, Any]
PROMETHEUS_CRDS = Path(__file__).parent / "fixtures" / "prometheus-operator-crds.yaml"


class Kubectl:
    def __init__(self, kubeconfig: Path, home: Path) -> None:
        try:
            self.binary = binaries()["kubectl"]
        except RealClusterUnavailable as missing:
            pytest.fail(str(missing), pytrace=False)
        self.kubeconfig, self.home = kubeconfig, home

    async def __call__(self, *args: str, stdin: str, ok: bool = True) -> str:
        process = await asyncio.create_subprocess_exec(
            str(self.binary), f"--kubeconfig={self.kubeconfig}", f"--cache-dir={self.home / 'kube-cache'}", *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "HOME": str(self.home)},
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 120)
        assert (process.returncode == 0) == ok, f"kubectl {' '.join(args)}: {process.returncode}: {err.decode()}"
        return out.decode() if ok else err.decode()

    async def apply(self, documents: list[JsonDict]) -> list[str]:
        return (await self("apply", "-f", "-", stdin=render_manifests(documents))).strip().splitlines()


def stored(server: ApiServer, document: JsonDict) -> JsonDict:
    namespace = document["metadata"].get("namespace")
    (found,) = [
        item
        for item in server.objects(document["apiVersion"], document["kind"], namespace)
        if item["metadata"]["name"] == document["metadata"]["name"]
    ]
    return found


def without_server_fields(document: JsonDict) -> JsonDict:
    return {key: value for key, value in document.items() if key not in ("metadata", "status")}


def contained(sent: Any, kept: Any) -> bool:
    """Everything sent is in what was stored (the server may add defaults, but prunes nothing)."""
    if isinstance(sent, dict):
        return isinstance(kept, dict) and all(key in kept and contained(sent[key], kept[key]) for key in sent)
    if isinstance(sent, list):
        return isinstance(kept, list) and len(sent) == len(kept) and all(map(contained, sent, kept))
    return bool(sent == kept)


@pytest.mark.parametrize("base", [base for base in bases() if base != "dashboards"] + ["dashboards"])
async def test_every_base_applies_to_the_emulator_and_again_unchanged(base: str, tmp_path: Path) -> None:
    async with ApiServer() as server:
        kubectl = Kubectl(server.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path)
        if base == "prometheus":
            await kubectl("apply", "-f", "-", stdin=PROMETHEUS_CRDS.read_text())
            await kubectl("create", "namespace", "modeladapter-system", stdin="")
        documents = operator_manifests(base)
        created = await kubectl.apply(documents)
        assert len(created) == len(documents) and all(line.endswith(" created") for line in created), created
        for document in documents:
            kept = stored(server, document)
            assert contained(without_server_fields(document), without_server_fields(kept)), document["kind"]
        again = await kubectl.apply(documents)
        assert all(line.endswith(" unchanged") for line in again), again


async def test_a_misspelled_custom_resource_field_is_refused_against_the_stand_in_schema(tmp_path: Path) -> None:
    """The checks above are not vacuous: kubectl validates a custom resource against its CRD's schema (which
    the emulator publishes), strictly, and the emulator prunes what kubectl did not check."""
    async with ApiServer() as server:
        kubectl = Kubectl(server.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path)
        await kubectl("apply", "-f", "-", stdin=PROMETHEUS_CRDS.read_text())
        monitor = next(
            d for d in operator_manifests("prometheus", namespace="default") if d["kind"] == "ServiceMonitor"
        )
        monitor["spec"]["endpoints"][0]["honourLabels"] = True
        refused = await kubectl("apply", "-f", "-", stdin=render_manifests([monitor]), ok=False)
        assert 'unknown field "honourLabels"' in refused
        await kubectl("apply", "--validate=false", "-f", "-", stdin=render_manifests([monitor]))
        assert "honourLabels" not in stored(server, monitor)["spec"]["endpoints"][0]


async def test_two_installs_in_two_namespaces_leave_two_cluster_roles_and_bindings(tmp_path: Path) -> None:
    async with ApiServer() as server:
        kubectl = Kubectl(server.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path)
        await kubectl.apply(operator_manifests())
        second = await kubectl.apply(operator_manifests(namespace="team-b"))
        assert "customresourcedefinition.apiextensions.k8s.io/modeladapters.model.aibrix.ai unchanged" in second
        assert all(line.endswith(" created") for line in second if "customresourcedefinition" not in line)
        roles = {role["metadata"]["name"] for role in server.objects("rbac.authorization.k8s.io/v1", "ClusterRole")}
        bindings = server.objects("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")
        assert roles == {"modeladapter-operator", "team-b-modeladapter-operator"}
        assert {(b["roleRef"]["name"], yaml.safe_dump(b["subjects"])) for b in bindings} == {
            ("modeladapter-operator", yaml.safe_dump([{"kind": "ServiceAccount", "name": "modeladapter-operator", "namespace": "modeladapter-system"}])),
            ("team-b-modeladapter-operator", yaml.safe_dump([{"kind": "ServiceAccount", "name": "team-b-modeladapter-operator", "namespace": "team-b"}])),
        }  # fmt: skip
        for namespace in ("modeladapter-system", "team-b"):
            (deployment,) = server.objects("apps/v1", "Deployment", namespace)
            (account,) = server.objects("v1", "ServiceAccount", namespace)
            assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
