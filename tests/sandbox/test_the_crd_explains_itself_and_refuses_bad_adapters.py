"""Contract: the ModelAdapter CRD explains itself and refuses, at `kubectl apply`, what the operator would refuse
anyway, while every AIBrix sample still applies unchanged. kubectl 1.20 (from `.ci/prepare/20-kube-apiserver`)
drives both backends: the emulator must publish the CRD's schema in `/openapi/v2` as kube-apiserver v1.20 does
(kubectl explains from it, and validates `apply` input against it) and refuse with the same words."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeladapter.operator.kube.manifests import modeladapter_crd
from modeladapter.sandbox.apiserver import ApiServer
from modeladapter.sandbox.realcluster import RealCluster, RealClusterUnavailable, binaries
from tests.sandbox.conftest import Kube

SAMPLES = sorted((Path(__file__).parents[1] / "e2e" / "aibrix_samples").glob("*.yaml"))
SCHEMA = modeladapter_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
ARTIFACT_PATTERN = SCHEMA["properties"]["spec"]["properties"]["artifactURL"]["pattern"]
NAME_PATTERN = SCHEMA["properties"]["metadata"]["properties"]["name"]["pattern"]


class Kubectl:
    """kubectl 1.20 as a child process, with its own cache directory (discovery is cached per server)."""

    def __init__(self, kubeconfig: Path, home: Path) -> None:
        try:
            self.binary = binaries()["kubectl"]
        except RealClusterUnavailable as missing:
            pytest.fail(str(missing), pytrace=False)
        self.kubeconfig = kubeconfig
        self.cache = home / "kube-cache"
        self.env = {**os.environ, "HOME": str(home)}

    async def __call__(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            str(self.binary),
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.cache}",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )
        out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin else None), 60)
        return process.returncode or 0, out.decode(), err.decode()

    async def explain(self, field: str, *, expected: str, timeout: float = 60.0) -> str:
        """kube-apiserver publishes a new CRD's schema a few seconds after it is established: wait for it."""
        deadline = time.monotonic() + timeout
        while True:
            code, out, err = await self("explain", field)
            if code == 0 and expected in words(out):
                return out
            if time.monotonic() > deadline:
                raise AssertionError(f"kubectl explain {field} ({code}) never showed {expected!r}: {out}{err}")
            await asyncio.sleep(1)


def words(text: str) -> str:
    """Text with its line wrapping undone, so that a description can be found in kubectl's wrapped output."""
    return " ".join(text.split())


def description(*path: str) -> str:
    schema = SCHEMA
    for name in path:
        schema = schema["items"] if name == "[]" else schema["properties"][name]
    text: str = schema["description"]
    return words(text)


def manifest(name: str = "bad", **spec: Any) -> str:
    body = {"podSelector": {"matchLabels": {"model.aibrix.ai/name": "base"}}, "artifactURL": "hf://org/repo", **spec}
    document = {"apiVersion": "model.aibrix.ai/v1alpha1", "kind": "ModelAdapter", "metadata": {"name": name}}
    return yaml.safe_dump({**document, "spec": body})


@pytest.fixture
def kubectl(kube: Kube, tmp_path: Path) -> Kubectl:
    return Kubectl(kube.kubeconfig, tmp_path)


# --- kubectl explain ---------------------------------------------------------------------------------------------


async def test_kubectl_explain_answers_with_the_fields_description(kubectl: Kubectl) -> None:
    out = await kubectl.explain("modeladapter.spec.artifactURL", expected=description("spec", "artifactURL"))
    assert "FIELD:    artifactURL <string>" in out


async def test_kubectl_explain_lists_the_fields_of_the_spec_with_their_descriptions(kubectl: Kubectl) -> None:
    out = await kubectl.explain("modeladapter.spec", expected=description("spec"))
    for field in SCHEMA["properties"]["spec"]["properties"]:
        assert description("spec", field) in words(out), field
    assert re.search(r"^   artifactURL\t<string> -required-$", out, re.MULTILINE), out


async def test_a_current_kubectl_explains_too_falling_back_from_openapi_v3(kube: Kube, tmp_path: Path) -> None:
    """kubectl 1.32 asks for /openapi/v3 first; neither v1.20 nor the emulator serves it, so it reads v2."""
    current = Path("/usr/bin/kubectl")
    if not current.exists():
        pytest.fail("/usr/bin/kubectl (1.32) is missing: it comes with this kind of machine", pytrace=False)
    process = await asyncio.create_subprocess_exec(
        str(current),
        f"--kubeconfig={kube.kubeconfig}",
        f"--cache-dir={tmp_path / 'kube-cache'}",
        "explain",
        "modeladapter.spec.artifactURL",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert "FIELD:    artifactURL <string>" in out.decode()
    assert description("spec", "artifactURL") in words(out.decode())


async def test_kubectl_explain_reaches_nested_fields_of_the_status(kubectl: Kubectl) -> None:
    path = ("status", "placements", "[]", "state")
    out = await kubectl.explain("modeladapter.status.placements.state", expected=description(*path))
    assert "FIELD:    state <string>" in out


@pytest.fixture
async def both(real_cluster: RealCluster, tmp_path: Path) -> AsyncIterator[tuple[Kubectl, Kubectl]]:
    async with ApiServer() as server:
        server.seed(modeladapter_crd())
        emulator = Kubectl(server.write_kubeconfig(tmp_path / "emulator.kubeconfig"), tmp_path / "emulator")
        real = Kubectl(real_cluster.write_kubeconfig(tmp_path / "real.kubeconfig"), tmp_path / "real")
        yield emulator, real


@pytest.mark.parametrize(
    ("field", "shows"),
    [
        ("modeladapter", "Standard object's metadata."),
        ("modeladapter.metadata.name", "Name must be unique within a namespace."),
        ("modeladapter.spec", description("spec", "artifactURL")),
        ("modeladapter.spec.podSelector.matchExpressions", description("spec", "podSelector", "matchExpressions")),
        ("modeladapter.status", description("status", "phase")),
        ("modeladapterlist", "List of modeladapters."),
    ],
)
async def test_kubectl_explain_prints_the_same_on_the_emulator_as_on_kube_apiserver(
    both: tuple[Kubectl, Kubectl], field: str, shows: str
) -> None:
    emulator, real = both
    from_emulator = await emulator.explain(field, expected=shows)
    assert from_emulator == await real.explain(field, expected=shows)


# --- kubectl apply -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "refusal"),
    [
        pytest.param(
            manifest(artifactURL="ftp://models/sql-lora"),
            'spec.artifactURL: Invalid value: "ftp://models/sql-lora": spec.artifactURL in body should match '
            f"'{ARTIFACT_PATTERN}'",
            id="unknown-scheme",
        ),
        pytest.param(
            manifest(replicas=0),
            "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
            id="zero-replicas",
        ),
        pytest.param(
            manifest(podSelector={"matchExpressions": [{"key": "tier", "operator": "Like", "values": ["a"]}]}),
            'spec.podSelector.matchExpressions.operator: Unsupported value: "Like": supported values: "In", '
            '"NotIn", "Exists", "DoesNotExist"',
            id="unknown-operator",
        ),
        pytest.param(
            manifest("a" * 64),
            f'metadata.name: Invalid value: "{"a" * 64}": metadata.name in body should be at most 63 chars long',
            id="name-too-long-for-a-service",
        ),
        pytest.param(
            manifest("qwen.code.lora"),
            f"metadata.name: Invalid value: \"qwen.code.lora\": metadata.name in body should match '{NAME_PATTERN}'",
            id="dotted-name",
        ),
        pytest.param(
            manifest(schedulerName="leastLatency"),
            'spec.schedulerName: Unsupported value: "leastLatency": supported values: "", "default", '
            '"least-adapters", "leastAdapters", "bin-pack", "binPack", "random"',
            id="unknown-scheduler",
        ),
    ],
)
async def test_kubectl_apply_is_refused_by_the_server_naming_the_field(
    kube: Kube, kubectl: Kubectl, document: str, refusal: str
) -> None:
    code, _, err = await kubectl("apply", "-n", kube.namespace, "-f", "-", stdin=document)
    assert code == 1, err
    assert err.startswith('The ModelAdapter "') and err.endswith(f'" is invalid: {refusal}\n'), err


async def test_a_refused_adapter_is_not_stored(kube: Kube, kubectl: Kubectl) -> None:
    await kubectl("apply", "-n", kube.namespace, "-f", "-", stdin=manifest(replicas=0))
    assert (await kube.get(kube.ma("bad"))).status == 404


@pytest.mark.parametrize("sample", SAMPLES, ids=[path.stem for path in SAMPLES])
async def test_every_aibrix_sample_applies_unchanged_with_client_side_validation(
    kube: Kube, kubectl: Kubectl, sample: Path
) -> None:
    names = [document["metadata"]["name"] for document in yaml.safe_load_all(sample.read_text())]
    code, out, err = await kubectl("apply", "--validate=true", "-f", str(sample))
    try:
        assert (code, err) == (0, ""), err
        assert out.splitlines() == [f"modeladapter.model.aibrix.ai/{name} created" for name in names]
    finally:
        await kubectl("delete", "--wait=false", "-f", str(sample))
