"""`modeladapter manifests | kubectl apply -f -` installs the operator (deploy/default): the CRD, RBAC with least
privilege (no wildcard, Secrets read-only, only rules the operator uses) and a Deployment with probes and a
non-root read-only container. tests/deploy/ covers the other bases, kustomize and the event log's claim.

The output is applied for real: the CRD against the emulator, everything against a real kube-apiserver
v1.20.2. Both use kubectl 1.20 from `.ci/prepare/20-kube-apiserver`; without it these tests fail, never skip."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeladapter.operator.cli.main import main
from modeladapter.operator.controller.settings import (
    OPTIONS,
    add_run_arguments,
    env_var,
    parse_host_port,
    settings_from,
)
from modeladapter.operator.kube.manifests import (
    DEFAULT_NAMESPACE,
    DEPLOYMENT_FILE,
    default_image,
    modeladapter_crd,
    operator_manifests,
)
from modeladapter.sandbox.apiserver import ApiServer
from modeladapter.sandbox.realcluster import RealCluster, RealClusterUnavailable, binaries

JsonDict = dict[str, Any]
READ_ONLY = {"get", "list", "watch"}


def printed(*argv: str, capsys: pytest.CaptureFixture[str]) -> list[JsonDict]:
    assert main(["manifests", *argv]) == 0
    return [document for document in yaml.safe_load_all(capsys.readouterr().out) if document is not None]


def by_kind(documents: list[JsonDict], kind: str) -> list[JsonDict]:
    return [document for document in documents if document["kind"] == kind]


def one(documents: list[JsonDict], kind: str) -> JsonDict:
    (document,) = by_kind(documents, kind)
    return document


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


@pytest.fixture
def everything() -> list[JsonDict]:
    return operator_manifests()


def rules(documents: list[JsonDict]) -> set[tuple[str, str, frozenset[str]]]:
    """(apiGroup, resource, verbs) for every resource of every rule of the (Cluster)Roles."""
    found = set()
    for role in by_kind(documents, "ClusterRole") + by_kind(documents, "Role"):
        for rule in role["rules"]:
            assert "resourceNames" not in rule and "nonResourceURLs" not in rule
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    found.add((group, resource, frozenset(rule["verbs"])))
    return found


# --- RBAC ---------------------------------------------------------------------------------------------------


def test_the_cluster_role_grants_exactly_what_the_operator_uses(everything: list[JsonDict]) -> None:
    crd = modeladapter_crd()["spec"]
    group, plural = crd["group"], crd["names"]["plural"]
    owned = {"get", "list", "watch", "create", "patch"}
    assert rules([one(everything, "ClusterRole")]) == {
        (group, plural, frozenset({"list", "watch", "patch"})),
        (group, f"{plural}/status", frozenset({"patch"})),
        (group, f"{plural}/finalizers", frozenset({"update"})),
        ("", "pods", frozenset({"list", "watch"})),
        ("", "services", frozenset(owned)),
        ("discovery.k8s.io", "endpointslices", frozenset(owned)),
        ("gateway.networking.k8s.io", "httproutes", frozenset(owned)),
        ("", "secrets", frozenset({"get"})),
        ("", "events", frozenset({"create", "patch"})),
    }


def test_the_lease_is_reachable_only_in_the_operators_namespace(everything: list[JsonDict]) -> None:
    role = one(everything, "Role")
    assert role["metadata"]["namespace"] == DEFAULT_NAMESPACE
    assert rules([role]) == {("coordination.k8s.io", "leases", frozenset({"get", "create", "update"}))}
    assert not any(resource == "leases" for _, resource, _ in rules([one(everything, "ClusterRole")]))


def test_no_wildcard_appears_anywhere_in_the_rbac(everything: list[JsonDict]) -> None:
    rbac = [d for d in everything if d["kind"] in ("ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding")]
    assert len(rbac) == 4
    assert not [text for text in strings(rbac) if "*" in text]


def test_secrets_and_pods_are_read_only_and_crds_are_out_of_reach(everything: list[JsonDict]) -> None:
    granted = rules(everything)
    for _, resource, verbs in granted:
        if resource in ("secrets", "pods"):
            assert verbs <= READ_ONLY, f"{resource} must be read-only, got {sorted(verbs)}"
    assert not [
        g for g, resource, _ in granted if resource == "customresourcedefinitions" or g == "apiextensions.k8s.io"
    ]


def test_both_bindings_name_the_service_account_the_deployment_runs_as(everything: list[JsonDict]) -> None:
    account = one(everything, "ServiceAccount")["metadata"]
    assert one(everything, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == account["name"]
    for binding, role in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        document = one(everything, binding)
        assert document["subjects"] == [
            {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
        ]
        assert document["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": role,
            "name": one(everything, role)["metadata"]["name"],
        }


# --- the Deployment -----------------------------------------------------------------------------------------


def operator_container(documents: list[JsonDict]) -> JsonDict:
    (container,) = one(documents, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def environment(container: JsonDict) -> dict[str, Any]:
    return {variable["name"]: variable.get("value", variable.get("valueFrom")) for variable in container["env"]}


def test_one_replica_with_leader_election_and_the_pods_namespace(everything: list[JsonDict]) -> None:
    assert one(everything, "Deployment")["spec"]["replicas"] == 1
    env = environment(operator_container(everything))
    assert env["MODELADAPTER_LEADER_ELECTION"] == "true"
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_the_environment_is_settings_the_operator_accepts(everything: list[JsonDict]) -> None:
    env = {name: value for name, value in environment(operator_container(everything)).items() if isinstance(value, str)}
    known = {env_var(option.setting) for option in OPTIONS}
    assert {name for name in env if name.startswith("MODELADAPTER_")} <= known
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    settings = settings_from(parser.parse_args([]), {**env, "POD_NAMESPACE": DEFAULT_NAMESPACE})
    assert settings.leader_election and settings.lease_namespace == DEFAULT_NAMESPACE


def test_probes_hit_healthz_and_readyz_on_the_probe_port(everything: list[JsonDict]) -> None:
    container = operator_container(everything)
    _, probe_port = parse_host_port(environment(container)["MODELADAPTER_PROBE_ADDRESS"])
    (port,) = container["ports"]
    assert port["containerPort"] == probe_port
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    annotations = one(everything, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(probe_port)


def test_the_container_runs_non_root_on_a_read_only_root_filesystem_with_requests(everything: list[JsonDict]) -> None:
    pod = one(everything, "Deployment")["spec"]["template"]["spec"]
    container = operator_container(everything)
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])


def test_the_shipped_file_names_the_default_image() -> None:
    (container,) = yaml.safe_load(DEPLOYMENT_FILE.read_text())["spec"]["template"]["spec"]["containers"]
    assert container["image"] == default_image()  # bump deployment.yaml with the version


# --- the command ----------------------------------------------------------------------------------------------


def test_the_whole_output_is_the_crd_then_the_namespace_then_rbac_then_the_operator(
    capsys: pytest.CaptureFixture[str],
) -> None:
    kinds = [document["kind"] for document in printed(capsys=capsys)]
    assert kinds == [
        "CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
        "RoleBinding", "PersistentVolumeClaim", "Deployment", "Service",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "crds"),
    [
        pytest.param(["crds"], ["CustomResourceDefinition"], id="crds"),
        pytest.param(["default", "--without-crds"], [], id="without-crds"),
    ],
)
def test_the_crd_is_printed_alone_or_left_out(
    argv: list[str], crds: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    kinds = [document["kind"] for document in printed(*argv, capsys=capsys)]
    assert [kind for kind in kinds if kind == "CustomResourceDefinition"] == crds
    assert (kinds == crds) == (argv == ["crds"])


def test_namespace_and_image_are_filled_in_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    documents = printed("--namespace", "team-ops", "--image", "registry.example/modeladapter:1.2.3", capsys=capsys)
    assert one(documents, "Namespace")["metadata"]["name"] == "team-ops"
    for document in documents:
        if document["kind"] in (
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "PersistentVolumeClaim",
            "Deployment",
            "Service",
        ):
            assert document["metadata"]["namespace"] == "team-ops"
        if document["kind"] not in ("Namespace", "CustomResourceDefinition"):
            assert document["metadata"]["name"].startswith("team-ops-")
        for subject in document.get("subjects", []):
            assert subject["namespace"] == "team-ops"
    assert DEFAULT_NAMESPACE not in "\n".join(strings(documents))
    assert operator_container(documents)["image"] == "registry.example/modeladapter:1.2.3"


def test_a_bad_namespace_is_a_one_line_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifests", "--namespace", "Team_Ops"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("modeladapter manifests: --namespace 'Team_Ops' is not a valid namespace name")
    assert captured.err.count("\n") == 1


def test_a_bad_image_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifests", "--image", "my image"]) == 2
    assert capsys.readouterr().err.startswith("modeladapter manifests: --image 'my image' is not an image reference")


def test_an_unknown_base_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["manifests", "everything"])
    assert exited.value.code == 2
    assert "invalid choice: 'everything'" in capsys.readouterr().err


# --- applied for real ---------------------------------------------------------------------------------------


def kubectl_binary() -> Path:
    try:
        return binaries()["kubectl"]
    except RealClusterUnavailable as missing:
        pytest.fail(str(missing), pytrace=False)


def console_script_output(*argv: str) -> str:
    """What the installed `modeladapter` command prints, as `kubectl apply -f -` would read it."""
    script = Path(sys.executable).parent / "modeladapter"
    result = subprocess.run([str(script), "manifests", *argv], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


async def kubectl(binary: Path, kubeconfig: Path, home: Path, *args: str, stdin: str | None = None) -> str:
    process = await asyncio.create_subprocess_exec(
        str(binary), f"--kubeconfig={kubeconfig}", f"--cache-dir={home / 'kube-cache'}", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "HOME": str(home)},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin else None), 120)
    assert process.returncode == 0, f"kubectl {' '.join(args)} failed: {err.decode()}"
    return out.decode()


AIBRIX_ADAPTER = """\
apiVersion: model.aibrix.ai/v1alpha1
kind: ModelAdapter
metadata:
  name: qwen-code-lora
  namespace: default
spec:
  baseModel: qwen-coder-1-5b-instruct
  podSelector:
    matchLabels:
      model.aibrix.ai/name: qwen-coder-1-5b-instruct
  artifactURL: huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora
"""


async def test_the_crd_applies_to_the_emulator_and_serves_modeladapters(tmp_path: Path) -> None:
    binary = kubectl_binary()
    async with ApiServer() as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        applied = await kubectl(binary, kubeconfig, tmp_path, "apply", "-f", "-", stdin=console_script_output("crds"))
        assert applied.strip() == "customresourcedefinition.apiextensions.k8s.io/modeladapters.model.aibrix.ai created"
        await kubectl(binary, kubeconfig, tmp_path, "apply", "-f", "-", stdin=AIBRIX_ADAPTER)
        (adapter,) = server.objects("model.aibrix.ai/v1alpha1", "ModelAdapter", "default")
        assert adapter["metadata"]["name"] == "qwen-code-lora"


@pytest.fixture(scope="module")
def real_apiserver() -> Iterator[RealCluster]:
    try:
        cluster = RealCluster.start()
    except RealClusterUnavailable as missing:
        pytest.fail(str(missing), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


async def test_everything_applies_to_a_real_apiserver_with_the_right_kinds(
    real_apiserver: RealCluster, tmp_path: Path
) -> None:
    binary = kubectl_binary()
    kubeconfig = real_apiserver.write_kubeconfig(tmp_path / "kubeconfig")
    output = console_script_output("--namespace", "ma-system")
    expected = [(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(output) if d]
    await kubectl(binary, kubeconfig, tmp_path, "apply", "-f", "-", stdin=output)
    stored = yaml.safe_load(await kubectl(binary, kubeconfig, tmp_path, "get", "-f", "-", "-o", "yaml", stdin=output))
    assert [(item["kind"], item["metadata"]["name"]) for item in stored["items"]] == expected
    # Applying again changes nothing: the output is stable, as `kubectl apply` in a pipeline needs.
    again = await kubectl(binary, kubeconfig, tmp_path, "apply", "-f", "-", stdin=output)
    assert all(line.endswith(" unchanged") for line in again.strip().splitlines()), again
