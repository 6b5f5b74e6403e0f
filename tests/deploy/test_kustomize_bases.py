"""The kustomize bases under deploy/: `kubectl kustomize` (kustomize v5, `/usr/bin/kubectl`) and `modeladapter
manifests` render the same objects from the same files, for every base and for the overlay `--namespace`
generates; every built-in object is valid for Kubernetes 1.33 (`kubernetes-validate --strict`); and each base
holds what the issue asks of it. The custom resources (ServiceMonitor, PrometheusRule) are checked against a
CRD schema by the emulator in test_install_on_the_emulator.py, as kubernetes-validate knows no schema for them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from modeladapter.operator.cli.main import main
from modeladapter.operator.kube.kustomize import KustomizeError, build
from modeladapter.operator.kube.manifests import (
    DEFAULT_NAMESPACE,
    MANIFESTS,
    bases,
    install_overlay,
    operator_manifests,
)

JsonDict = dict[str, Any]
KUBECTL = Path("/usr/bin/kubectl")
KUBERNETES_VERSION = "1.33.0"
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}
SECOND = {"namespace": "team-b", "image": "registry.example/modeladapter:1.2.3"}


def kubectl_kustomize(folder: Path) -> list[JsonDict]:
    if not KUBECTL.is_file():
        pytest.fail(
            "/usr/bin/kubectl (with kustomize v5) is missing: it comes with this kind of machine", pytrace=False
        )
    result = subprocess.run([str(KUBECTL), "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def keyed(documents: list[JsonDict]) -> dict[tuple[str, str, str, str], JsonDict]:
    found = {}
    for document in documents:
        metadata = document["metadata"]
        key = (document["apiVersion"], document["kind"], metadata.get("namespace", ""), metadata["name"])
        assert key not in found, f"{key} twice"
        found[key] = document
    return found


def one(documents: list[JsonDict], kind: str) -> JsonDict:
    (document,) = [document for document in documents if document["kind"] == kind]
    return document


def test_the_bases_are_the_ones_the_issue_names() -> None:
    assert {"crds", "default", "ha-postgresql", "prometheus", "single-namespace"} <= set(bases())


# --- one source: kustomize and `modeladapter manifests` agree ------------------------------------------------


@pytest.mark.parametrize("base", bases())
def test_kubectl_kustomize_renders_the_same_objects_as_modeladapter_manifests(base: str) -> None:
    ours, theirs = keyed(operator_manifests(base)), keyed(kubectl_kustomize(MANIFESTS / base))
    assert sorted(ours) == sorted(theirs)
    for key, document in ours.items():
        assert document == theirs[key], key


@pytest.mark.parametrize("base", bases())
def test_the_overlay_for_another_namespace_and_image_renders_the_same_with_kustomize(base: str, tmp_path: Path) -> None:
    """What `--namespace team-b --image ...` renders is an overlay; written out, kustomize renders it alike."""
    overlay = install_overlay(os.path.relpath(MANIFESTS / base, tmp_path), **SECOND)
    assert overlay is not None
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
    ours, theirs = keyed(operator_manifests(base, **SECOND)), keyed(kubectl_kustomize(tmp_path))
    assert sorted(ours) == sorted(theirs)
    for key, document in ours.items():
        assert document == theirs[key], key


def test_the_command_prints_what_the_renderer_builds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifests", "ha-postgresql", "--namespace", "team-b"]) == 0
    printed = [document for document in yaml.safe_load_all(capsys.readouterr().out) if document]
    assert printed == operator_manifests("ha-postgresql", namespace="team-b")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("commonLabels", {"team": "a"}, id="commonLabels"),
        pytest.param("components", ["../x"], id="components"),
        pytest.param("replicas", [{"name": "modeladapter-operator", "count": 3}], id="replicas"),
        pytest.param("configMapGenerator", [{"name": "c", "literals": ["a=b"]}], id="hashed-configmap"),
        pytest.param("patches", [{"patch": "spec:\n  replicas: 3\n", "target": {"kind": "Deployment"}}], id="smp"),
        pytest.param("patches", [{"patch": "[]", "target": {"labelSelector": "a=b"}}], id="label-selector-target"),
        pytest.param("labels", [{"pairs": {"a": "b"}, "includeSelectors": True}], id="label-selectors"),
    ],
)
def test_a_kustomize_field_outside_the_subset_is_refused_not_rendered_differently(field: str, value: Any) -> None:
    with pytest.raises(KustomizeError, match="not implemented|needs|takes only") as refused:
        build(MANIFESTS, {"resources": ["default"], field: value})
    assert "\n" not in str(refused.value)


def test_a_json_patch_whose_test_fails_is_an_error_as_in_kustomize() -> None:
    patch = "- {op: test, path: /spec/replicas, value: 7}\n- {op: replace, path: /spec/replicas, value: 3}"
    with pytest.raises(KustomizeError, match="modeladapter-operator"):
        build(MANIFESTS, {"resources": ["default"], "patches": [{"patch": patch, "target": {"kind": "Deployment"}}]})


def test_an_unknown_base_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["manifests", "everything"])
    assert exited.value.code == 2
    assert "invalid choice: 'everything'" in capsys.readouterr().err


def test_a_namespace_that_makes_the_service_name_too_long_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifests", "--namespace", "a" * 40]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "over 63 characters" in captured.err


# --- valid for current Kubernetes ----------------------------------------------------------------------------


def every_rendered_object() -> list[Any]:
    return [
        pytest.param(
            document, id=f"{base}{'-team-b' if overlay else ''}:{document['kind']}/{document['metadata']['name']}"
        )
        for base in bases()
        for overlay in (False, True)
        for document in (operator_manifests(base, **SECOND) if overlay else operator_manifests(base))
        if document["kind"] not in CUSTOM_KINDS
    ]


@pytest.mark.parametrize("document", every_rendered_object())
def test_every_built_in_object_is_valid_for_kubernetes_1_33_strictly(document: JsonDict) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_strict_validation_refuses_a_misspelled_field() -> None:
    deployment = one(operator_manifests(), "Deployment")
    deployment["spec"]["template"]["spec"]["serviceAcountName"] = "typo"
    with pytest.raises(kubernetes_validate.ValidationError, match="serviceAcountName"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


# --- what each base holds --------------------------------------------------------------------------------------


def container_env(deployment: JsonDict) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {variable["name"]: variable.get("value", variable.get("valueFrom")) for variable in container["env"]}


def test_the_crds_base_is_the_crd_alone() -> None:
    assert [document["kind"] for document in operator_manifests("crds")] == ["CustomResourceDefinition"]


def test_the_default_install_keeps_the_sqlite_log_on_a_claim_and_never_runs_two_pods() -> None:
    documents = operator_manifests()
    deployment = one(documents, "Deployment")
    url = container_env(deployment)["MODELADAPTER_DATABASE_URL"]
    directory = str(Path(url.removeprefix("sqlite:///")).parent)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    claim = one(documents, "PersistentVolumeClaim")
    assert volume["persistentVolumeClaim"] == {"claimName": claim["metadata"]["name"]}
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_the_metrics_service_selects_the_operator_pods_on_the_probe_port() -> None:
    documents = operator_manifests()
    service, deployment = one(documents, "Service"), one(documents, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert port["name"] == "metrics" and port["targetPort"] in {p["name"] for p in container["ports"]}


def test_the_ha_overlay_runs_two_leader_electing_replicas_on_postgresql_from_a_secret() -> None:
    documents = operator_manifests("ha-postgresql")
    deployment = one(documents, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] >= 2 and spec["strategy"]["type"] == "RollingUpdate"
    env = container_env(deployment)
    assert env["MODELADAPTER_LEADER_ELECTION"] == "true"
    assert env["MODELADAPTER_DATABASE_URL"] == {"secretKeyRef": {"name": "modeladapter-database", "key": "url"}}
    assert not [d for d in documents if d["kind"] in ("Secret", "PersistentVolumeClaim")]
    budget = one(documents, "PodDisruptionBudget")
    assert budget["apiVersion"] == "policy/v1" and budget["spec"]["minAvailable"] == 1
    pod_labels = spec["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    spread = spec["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert all(c["labelSelector"]["matchLabels"].items() <= pod_labels.items() for c in spread)


def test_the_service_monitor_scrapes_the_metrics_service_and_keeps_the_adapters_namespace_label() -> None:
    monitor = one(operator_manifests("prometheus"), "ServiceMonitor")
    service = one(operator_manifests(), "Service")
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"] == DEFAULT_NAMESPACE
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics" and endpoint["honorLabels"] is True
    assert one(operator_manifests("prometheus"), "PrometheusRule")["metadata"]["namespace"] == DEFAULT_NAMESPACE


@pytest.mark.parametrize("namespace", [None, "team-a"])
def test_single_namespace_reads_secrets_only_in_the_namespace_it_watches(namespace: str | None) -> None:
    documents = operator_manifests("single-namespace", namespace=namespace)
    own = namespace or DEFAULT_NAMESPACE
    cluster_role = one(documents, "ClusterRole")
    assert not [rule for rule in cluster_role["rules"] if "secrets" in rule["resources"]]
    (secrets,) = [r for r in documents if r["kind"] == "Role" and any("secrets" in x["resources"] for x in r["rules"])]
    assert secrets["metadata"]["namespace"] == own
    assert secrets["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    (binding,) = [
        b for b in documents if b["kind"] == "RoleBinding" and b["roleRef"]["name"] == secrets["metadata"]["name"]
    ]
    account = one(documents, "ServiceAccount")["metadata"]
    assert binding["metadata"]["namespace"] == own
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"], "namespace": own}]
    assert container_env(one(documents, "Deployment"))["MODELADAPTER_NAMESPACE"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }


def test_two_installs_share_no_cluster_scoped_object_but_the_crd() -> None:
    first, second = operator_manifests(), operator_manifests(namespace="team-b")
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "Namespace"}
    names = [
        {(d["kind"], d["metadata"]["name"]) for d in install if d["kind"] in cluster_scoped}
        for install in (first, second)
    ]
    assert len(names[0]) == len(names[1]) == 3 and not names[0] & names[1]
    assert one(first, "CustomResourceDefinition") == one(second, "CustomResourceDefinition")
    binding = one(second, "ClusterRoleBinding")
    assert (
        binding["roleRef"]["name"] == one(second, "ClusterRole")["metadata"]["name"] == "team-b-modeladapter-operator"
    )
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "team-b-modeladapter-operator", "namespace": "team-b"}
    ]
    deployment = one(second, "Deployment")["spec"]["template"]["spec"]
    assert deployment["serviceAccountName"] == "team-b-modeladapter-operator"
    assert deployment["volumes"][0]["persistentVolumeClaim"]["claimName"] == "team-b-modeladapter-events"
    assert deployment["containers"][0]["image"] == "modeladapter:0.1.0"


def test_without_crds_leaves_only_the_crd_out() -> None:
    everything, without = operator_manifests(), operator_manifests(without_crds=True)
    assert [d for d in everything if d["kind"] != "CustomResourceDefinition"] == without
