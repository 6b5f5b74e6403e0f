"""kubectl 1.20 (Debian's `kubernetes-client`, unpacked by `.ci/prepare/20-kube-apiserver`) drives a ModelAdapter
through the emulator: get with the CRD's printer columns, get -o yaml, apply (create, then patch), describe,
get -w and delete. The emulator runs in this test's event loop; kubectl runs as a child process."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from modeladapter.operator.kube.manifests import modeladapter_crd
from modeladapter.sandbox.apiserver import ApiServer
from modeladapter.sandbox.realcluster import RealClusterUnavailable, binaries

MANIFEST = """\
apiVersion: model.aibrix.ai/v1alpha1
kind: ModelAdapter
metadata:
  name: qwen-code-lora
  namespace: default
  labels:
    model.aibrix.ai/name: qwen-code-lora
    model.aibrix.ai/port: "8000"
spec:
  baseModel: qwen-coder-1-5b-instruct
  podSelector:
    matchLabels:
      model.aibrix.ai/name: qwen-coder-1-5b-instruct
      adapter.model.aibrix.ai/enabled: "true"
  artifactURL: huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora
  schedulerName: default
"""


class Kubectl:
    def __init__(self, binary: Path, kubeconfig: Path, home: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(kubeconfig)}
        self.cache = home / "kube-cache"

    def argv(self, *args: str) -> list[str]:
        return [str(self.binary), f"--kubeconfig={self.kubeconfig}", f"--cache-dir={self.cache}", *args]

    async def __call__(self, *args: str, stdin: str | None = None, ok: bool = True) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            *self.argv(*args),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )
        out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin else None), 60)
        code = process.returncode or 0
        if ok:
            assert code == 0, f"kubectl {' '.join(args)} failed ({code}): {err.decode()}"
        return code, out.decode(), err.decode()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[ApiServer, Kubectl]]:
    try:
        binary = binaries()["kubectl"]
    except RealClusterUnavailable as missing:
        pytest.fail(str(missing), pytrace=False)
    async with ApiServer() as server:
        server.seed(modeladapter_crd())
        yield server, Kubectl(binary, server.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path)


def table(text: str) -> list[list[str]]:
    """kubectl's columns are separated by at least two spaces (`MODEL PATH` holds one)."""
    import re

    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


async def test_kubectl_1_20_manages_a_modeladapter_end_to_end(
    cluster: tuple[ApiServer, Kubectl], tmp_path: Path
) -> None:
    server, kubectl = cluster
    _, version, _ = await kubectl("version", "--short")
    assert "Client Version: v1.20.2" in version and "Server Version: v1.20.2" in version

    manifest = tmp_path / "adapter.yaml"
    manifest.write_text(MANIFEST)
    _, out, _ = await kubectl("apply", "-f", str(manifest))
    assert out.strip() == "modeladapter.model.aibrix.ai/qwen-code-lora created"

    stored = server.get("model.aibrix.ai/v1alpha1", "ModelAdapter", "default", "qwen-code-lora")
    assert stored is not None
    status = {"phase": "Running", "desiredReplicas": 2, "readyReplicas": 2, "candidates": 3}
    server.store.patch(
        server.store.type_for(stored),
        "default",
        "qwen-code-lora",
        "application/merge-patch+json",
        {"status": status},
        subresource="status",
    )

    _, out, _ = await kubectl("get", "modeladapters")
    rows = table(out)
    assert rows[0] == ["NAME", "PHASE", "DESIRED", "READY", "CANDIDATES", "MODEL PATH", "AGE"]
    assert rows[1][:6] == [
        "qwen-code-lora",
        "Running",
        "2",
        "2",
        "3",
        "huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora",
    ]
    _, short, _ = await kubectl("get", "ma", "qwen-code-lora")
    assert table(short)[1][0] == "qwen-code-lora"

    _, out, _ = await kubectl("get", "ma", "qwen-code-lora", "-o", "yaml")
    document = yaml.safe_load(out)
    assert document["spec"]["podSelector"]["matchLabels"]["adapter.model.aibrix.ai/enabled"] == "true"
    assert document["status"]["phase"] == "Running"
    assert "kubectl.kubernetes.io/last-applied-configuration" in document["metadata"]["annotations"]

    manifest.write_text(MANIFEST.replace("  schedulerName: default\n", "  schedulerName: default\n  replicas: 2\n"))
    _, out, _ = await kubectl("apply", "-f", str(manifest))
    assert out.strip() == "modeladapter.model.aibrix.ai/qwen-code-lora configured"
    updated = server.get("model.aibrix.ai/v1alpha1", "ModelAdapter", "default", "qwen-code-lora")
    assert updated is not None
    assert updated["spec"]["replicas"] == 2 and updated["metadata"]["generation"] == 2
    _, out, _ = await kubectl("apply", "-f", str(manifest))
    assert out.strip() == "modeladapter.model.aibrix.ai/qwen-code-lora unchanged"

    server.seed(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "qwen-code-lora.1", "namespace": "default"},
            "involvedObject": {
                "apiVersion": "model.aibrix.ai/v1alpha1",
                "kind": "ModelAdapter",
                "name": "qwen-code-lora",
                "namespace": "default",
                "uid": updated["metadata"]["uid"],
            },
            "reason": "Loaded",
            "message": "adapter loaded on engine-0",
            "type": "Normal",
            "source": {"component": "modeladapter"},
            "count": 1,
            "firstTimestamp": "2026-11-26T10:00:00Z",
            "lastTimestamp": "2026-11-26T10:00:00Z",
        }
    )
    _, out, _ = await kubectl("describe", "ma", "qwen-code-lora")
    assert "Name:         qwen-code-lora" in out
    assert "Artifact URL:  huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora" in out
    assert "Phase:" in out and "Running" in out
    assert "Normal  Loaded" in out and "adapter loaded on engine-0" in out

    watcher = await asyncio.create_subprocess_exec(
        *kubectl.argv("get", "ma", "-w"), stdout=asyncio.subprocess.PIPE, env=kubectl.env
    )
    try:
        assert watcher.stdout is not None
        header = await asyncio.wait_for(watcher.stdout.readline(), 30)
        assert header.split()[:2] == [b"NAME", b"PHASE"]
        first = await asyncio.wait_for(watcher.stdout.readline(), 30)
        assert first.split()[:2] == [b"qwen-code-lora", b"Running"]
        server.store.patch(
            server.store.type_for(stored),
            "default",
            "qwen-code-lora",
            "application/merge-patch+json",
            {"status": {"phase": "Failed"}},
            subresource="status",
        )
        changed = await asyncio.wait_for(watcher.stdout.readline(), 30)
        assert changed.split()[:2] == [b"qwen-code-lora", b"Failed"]
    finally:
        watcher.kill()
        await watcher.wait()

    _, out, _ = await kubectl("delete", "ma", "qwen-code-lora")
    assert out.strip() == 'modeladapter.model.aibrix.ai "qwen-code-lora" deleted'
    code, _, err = await kubectl("get", "ma", "qwen-code-lora", ok=False)
    assert code == 1
    assert 'Error from server (NotFound): modeladapters.model.aibrix.ai "qwen-code-lora" not found' in err


async def test_kubectl_1_20_lists_pods_and_namespaces(cluster: tuple[ApiServer, Kubectl]) -> None:
    server, kubectl = cluster
    server.seed(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "engine-0", "namespace": "default"},
            "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.6.0"}]},
        }
    )
    _, out, _ = await kubectl("get", "pods")
    rows = table(out)
    assert rows[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert rows[1][:4] == ["engine-0", "0/1", "Pending", "0"]
    _, out, _ = await kubectl("get", "namespaces", "-o", "name")
    assert "namespace/default" in out.split()
    _, out, _ = await kubectl("api-resources", "--api-group=model.aibrix.ai")
    assert "modeladapters" in out and "ma" in out.split()


async def test_kubectl_1_20_applies_a_service_twice_with_a_strategic_merge_patch(
    cluster: tuple[ApiServer, Kubectl], tmp_path: Path
) -> None:
    server, kubectl = cluster
    manifest = tmp_path / "service.yaml"
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "qwen-code-lora", "namespace": "default"},
        "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 8000}]},
    }
    manifest.write_text(yaml.safe_dump(service))
    _, out, _ = await kubectl("apply", "-f", str(manifest))
    assert out.strip() == "service/qwen-code-lora created"
    service["spec"]["ports"].append({"name": "metrics", "port": 9090})
    manifest.write_text(yaml.safe_dump(service))
    _, out, _ = await kubectl("apply", "-f", str(manifest))
    assert out.strip() == "service/qwen-code-lora configured"
    stored = server.get("v1", "Service", "default", "qwen-code-lora")
    assert stored is not None
    assert [(p["name"], p["port"]) for p in stored["spec"]["ports"]] == [("http", 8000), ("metrics", 9090)]
    _, out, _ = await kubectl("get", "svc")
    assert table(out)[1][:4] == ["qwen-code-lora", "ClusterIP", "None", "<none>"]
