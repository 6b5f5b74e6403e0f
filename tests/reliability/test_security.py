"""Security: least-privilege RBAC, secrets that never leak, engine calls that cannot be steered, Secrets read only
in the adapter's namespace.

* **RBAC** (`modeladapter manifests`): no `*` in any verb, resource, API group or resource name; Secrets are
  read-only, and in fact only `get` is granted, which is all the operator does with them; every request the
  operator made in the scenario below is allowed by the shipped rules.
* **Secrets never leak.** The operator runs as a process, JSON logs at DEBUG, against adapters whose
  `apiKeySecretRef` and `credentialsSecretRef` Secrets hold distinctive values (`SEKRET-<hex>`): a key the engines
  accept, a wrong key (401), a missing Secret created later, an inline `additionalConfig["api-key"]`, a key with a
  control character (h11 used to quote the whole `Authorization` header in its error: a leak), an engine that echoes
  the key and the credentials in its error, S3 credentials that reach the AIBrix runtime sidecar. Not one value, nor
  its base64 form, appears in the operator's output, any Kubernetes Event, any ModelAdapter's status, annotations or
  labels, the Services, EndpointSlices and Lease it writes, `/metrics`, or any row of the event log (a full SQL dump).
* **Secrets only from the adapter's namespace.** `apiKeySecretRef`/`credentialsSecretRef` have no `namespace`
  field (the CRD prunes one), names are DNS subdomains (no `/`, no `..`), and every request the operator made for
  a Secret (the emulator records them) was a GET of a named Secret in the adapter's own namespace: never another
  namespace, never a list or a watch. A Secret of that name in `kube-system` stays unread (`SecretNotFound`).
* **Engine calls cannot be steered.** An `artifactURL` of `http://169.254.169.254/...`, `file:///etc/passwd` or
  another host's URL is refused by the CRD's schema (and by the operator, under AIBrix's CRD:
  `tests/operator/test_spec_validation.py`). With an `artifactURL` of `/etc/passwd`, with labels and annotations naming other hosts and ports, a non-matching pod
  and a matching pod in another namespace, only the engines of pods that match the adapter's selector in the
  adapter's namespace receive requests, and only the three engine routes; a bait server on a free address gets
  nothing. What is allowed and documented: the adapter's `model.aibrix.ai/port` label picks the port on a selected
  pod (any port, so a bait listening on a selected pod's IP at that port is called); an absolute path
  `artifactURL` is handed to the engine, which reads it on its own filesystem; a `hf://` id is the engine's to
  download. The operator trusts `status.podIP` of the selected pods (whoever can write pod status can point it
  anywhere; a `hostNetwork` pod's IP is its node's).
"""

from __future__ import annotations

import base64
import json
import sqlite3
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import yaml
from aiohttp import web

from modeladapter.operator.cli.main import main
from modeladapter.operator.kube.client import MODELADAPTERS, SECRETS, KubeError, Raw, Resource
from modeladapter.operator.kube.manifests import operator_manifests
from modeladapter.sandbox.apiserver import ApiServer
from modeladapter.sandbox.engine.adapter_files import write_peft_adapter
from modeladapter.sandbox.engine.faults import Fault
from modeladapter.sandbox.engine.runtime import SimulatedRuntimeSidecar
from tests.e2e.conftest import FAST, POD_LABELS, Sandbox, adapter_manifest
from tests.reliability.conftest import open_world

# --- (a) the shipped RBAC -----------------------------------------------------------------------------------------

RBAC_KINDS = ("ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding")


def shipped(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """What `modeladapter manifests` prints, parsed."""
    assert main(["manifests"]) == 0
    return [d for d in yaml.safe_load_all(capsys.readouterr().out) if d is not None]


def rules_of(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [rule for d in documents if d["kind"] == kind for rule in d.get("rules") or []]


def test_no_rule_of_the_shipped_rbac_has_a_wildcard(capsys: pytest.CaptureFixture[str]) -> None:
    documents = shipped(capsys)
    roles = [d for d in documents if d["kind"] in RBAC_KINDS]
    assert {d["kind"] for d in roles} == set(RBAC_KINDS)
    for rule in rules_of(documents, "ClusterRole") + rules_of(documents, "Role"):
        for key in ("verbs", "resources", "apiGroups", "resourceNames", "nonResourceURLs"):
            assert not any("*" in value for value in rule.get(key) or []), (key, rule)
        assert rule["verbs"] and rule["resources"], rule
    bindings = [d for d in documents if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    assert all(s["kind"] == "ServiceAccount" for b in bindings for s in b["subjects"]), "a binding to a user or a group"
    assert all(b["roleRef"]["name"] != "cluster-admin" for b in bindings)


def test_secrets_are_only_ever_read_one_by_one(capsys: pytest.CaptureFixture[str]) -> None:
    """The operator reads a Secret by name when it reconciles (`Reconciler._secret_data`): `get` is all it needs.
    `list` or `watch` would hand it every Secret of the cluster at once."""
    documents = shipped(capsys)
    granted = [
        rule
        for rule in rules_of(documents, "ClusterRole") + rules_of(documents, "Role")
        if "secrets" in rule["resources"]
    ]
    assert len(granted) == 1 and granted[0]["apiGroups"] == [""]
    assert granted[0]["verbs"] == ["get"]
    assert granted[0]["resources"] == ["secrets"]


def allowed(documents: list[dict[str, Any]], verb: str, group: str, resource: str, *, lease_namespace: bool) -> bool:
    rules = rules_of(documents, "ClusterRole") + (rules_of(documents, "Role") if lease_namespace else [])
    return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)


# --- recording what the operator asks of the API server --------------------------------------------------------------


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    authorized: bool
    """Sent with the bearer token: the test's own requests. The operator's kubeconfig has none."""

    @property
    def verb(self) -> str:
        if self.method == "GET":
            if self.query.get("watch") == ["true"]:
                return "watch"
            return "get" if self.named else "list"
        return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[self.method]

    @property
    def parts(self) -> list[str]:
        return [p for p in self.path.split("/") if p]

    @property
    def group_and_rest(self) -> tuple[str, list[str]]:
        parts = self.parts
        return ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])

    @property
    def namespace(self) -> str | None:
        _, rest = self.group_and_rest
        return rest[1] if rest[:1] == ["namespaces"] and len(rest) > 2 else None

    @property
    def resource(self) -> str:
        """`secrets`, `modeladapters/status`, ..."""
        _, rest = self.group_and_rest
        if rest[:1] == ["namespaces"] and len(rest) > 2:
            rest = rest[2:]
        return "/".join([rest[0], *rest[2:3]])

    @property
    def named(self) -> bool:
        _, rest = self.group_and_rest
        if rest[:1] == ["namespaces"] and len(rest) > 2:
            rest = rest[2:]
        return len(rest) > 1

    @property
    def name(self) -> str | None:
        _, rest = self.group_and_rest
        if rest[:1] == ["namespaces"] and len(rest) > 2:
            rest = rest[2:]
        return rest[1] if len(rest) > 1 else None


class RecordingApiServer(ApiServer):
    """The emulator, remembering every API request: method, path, query, and whether it carried the token."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[ApiRequest] = []

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith(("/api/", "/apis/")):
            self.requests.append(
                ApiRequest(
                    request.method, request.path, parse_qs(request.query_string), "Authorization" in request.headers
                )
            )
        return await super()._dispatch(request)


def tokenless_kubeconfig(server: ApiServer, path: Path) -> Path:
    """The operator's kubeconfig: no credentials, which the emulator serves, so that its requests stand out."""
    config = server.kubeconfig()
    config["users"][0]["user"] = {}
    path.write_text(yaml.safe_dump(config))
    return path


# --- (b) and (d): the secrets scenario, the operator as a process ------------------------------------------------------


def sekret(kind: str) -> str:
    return f"SEKRET-{kind}-{uuid.uuid4().hex}"


@dataclass
class Needles:
    values: dict[str, str] = field(default_factory=dict)

    def add(self, label: str, value: str) -> str:
        self.values[label] = value
        return value

    def patterns(self) -> dict[str, str]:
        """Each value's random part (which survives any escaping) and its base64 form (a Secret's `data`)."""
        found: dict[str, str] = {}
        for label, value in self.values.items():
            found[f"{label} (hex)"] = value.rsplit("-", 1)[-1]
            found[f"{label} (base64)"] = base64.b64encode(value.encode()).decode()
        return found

    def leaks(self, where: str, text: str) -> list[str]:
        return [f"{label} in {where}" for label, needle in self.patterns().items() if needle in text]


def secret(name: str, data: dict[str, str], namespace: str = "default") -> Raw:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


RUNTIME_CONTAINERS = [
    {"name": "vllm-openai", "image": "vllm/vllm-openai:v0.24.0", "ports": [{"containerPort": 8000}]},
    {"name": "aibrix-runtime", "image": "aibrix/runtime:v0.7.0", "ports": [{"containerPort": 8080}]},
]
S3_URL = "s3://adapters/qwen/sql-lora"


async def test_secret_values_appear_nowhere_and_secrets_are_read_only_in_the_adapters_namespace(tmp_path: Path) -> None:
    needles = Needles()
    api_key = needles.add("api key", sekret("API"))
    wrong_key = needles.add("wrong key", sekret("WRONG"))
    inline_key = needles.add("inline key", sekret("INLINE"))
    control_key = needles.add("key with a NUL", "SEKRET-CTRL\x00" + uuid.uuid4().hex)
    credential = needles.add("S3 secret key", sekret("CRED"))
    stolen = needles.add("kube-system secret", sekret("STOLEN"))
    server = RecordingApiServer()
    async with open_world(tmp_path, engines=5, server=server) as sandbox:
        old = datetime.now(UTC) - timedelta(minutes=5)
        for index in range(2):
            await sandbox.kubelet.create_pod(f"keyed-{index}", labels=POD_LABELS, since=old)
        await sandbox.kubelet.create_pod(
            "runtime-0", labels={"pool": "runtime"}, containers=RUNTIME_CONTAINERS, since=old
        )
        await sandbox.kubelet.create_pod("echo-0", labels={"pool": "echo"}, since=old)
        await sandbox.kubelet.create_pod(
            "echo-runtime-0", labels={"pool": "echo-runtime"}, containers=RUNTIME_CONTAINERS, since=old
        )
        for pod in ("keyed-0", "keyed-1", "echo-0"):
            sandbox.engine(pod).api_key = api_key
        # Engines that echo what they were sent in their errors: the vLLM one the key, the sidecar the key and the
        # credentials. The operator must mask both before it records the error anywhere.
        echo = f'{{"error": {{"message": "bad request with key {api_key}", "type": "BadRequestError"}}}}'
        sandbox.engine("echo-0").inject(Fault(status=400, body=echo), route="load", times=None)
        downloads = {S3_URL: write_peft_adapter(tmp_path / "downloads" / "sql-lora")}
        sidecar = SimulatedRuntimeSidecar(
            sandbox.engine("runtime-0"),
            artifacts=downloads,
            required_credentials={S3_URL: {"aws_secret_access_key": credential}},
        )
        echoing = SimulatedRuntimeSidecar(sandbox.engine("echo-runtime-0"), artifacts=downloads)
        echoing.inject(
            Fault(status=400, body=f'{{"error": "no: key {api_key}, credentials {credential}"}}'),
            route="load",
            times=None,
        )
        await sidecar.start()
        await echoing.start()
        await sandbox.kube.create(SECRETS, "default", secret("engine-key", {"api-key": api_key}))
        await sandbox.kube.create(SECRETS, "default", secret("wrong-key", {"api-key": wrong_key}))
        await sandbox.kube.create(SECRETS, "default", secret("control-key", {"api-key": control_key}))
        await sandbox.kube.create(
            SECRETS,
            "default",
            secret("s3-creds", {"aws_access_key_id": "AKIAFAKE", "aws_secret_access_key": credential}),
        )
        await sandbox.kube.create(
            SECRETS,
            "kube-system",
            secret("stolen", {"api-key": stolen, "aws_secret_access_key": stolen}, "kube-system"),
        )
        sandbox.kubeconfig = tokenless_kubeconfig(server, tmp_path / "operator-kubeconfig")
        operator = sandbox.spawn_operator("--log-level", "debug", "--enable-runtime-sidecar")
        try:
            await secrets_scenario(sandbox, api_key=api_key, inline_key=inline_key, sidecar=sidecar)
            async with httpx.AsyncClient() as http:
                metrics = (await http.get(f"http://127.0.0.1:{operator.probe_port}/metrics", timeout=5)).text
            assert "modeladapter" in metrics
        finally:
            await operator.terminate()
            await sidecar.stop()
            await echoing.stop()
        log = operator.log()
        assert log.count("\n") > 100 and '"level": "DEBUG"' in log, "the operator logged too little to tell"
        leaks = needles.leaks("the operator's log", log) + needles.leaks("/metrics", metrics)
        leaks += needles.leaks(
            "Kubernetes Events", json.dumps(sandbox.server.objects("v1", "Event"), ensure_ascii=False)
        )
        for adapter in sandbox.server.objects("model.aibrix.ai/v1alpha1", "ModelAdapter"):
            written = {
                "status": adapter.get("status"),
                "annotations": adapter["metadata"].get("annotations"),
                "labels": adapter["metadata"].get("labels"),
            }
            leaks += needles.leaks(f"{adapter['metadata']['name']}'s status", json.dumps(written, ensure_ascii=False))
        for api_version, kind in (
            ("v1", "Service"),
            ("discovery.k8s.io/v1", "EndpointSlice"),
            ("coordination.k8s.io/v1", "Lease"),
        ):
            leaks += needles.leaks(
                f"{kind}s", json.dumps(sandbox.server.objects(api_version, kind), ensure_ascii=False)
            )
        dump = "\n".join(sqlite3.connect(sandbox.database_url.removeprefix("sqlite:///")).iterdump())
        assert "LoadFailed" in dump and "SpecRejected" in dump
        leaks += needles.leaks("the event log", dump)
        assert not leaks, leaks
        # The values did go where they belong: the engines accepted the key, the sidecar got the credentials.
        sent = [body.get("credentials") for body in sidecar.received]
        assert any(isinstance(c, dict) and c.get("aws_secret_access_key") == credential for c in sent)
        check_secret_reads(server.requests)
        check_rbac_covers(server.requests, shipped_manifests())


async def secrets_scenario(
    sandbox: Sandbox, *, api_key: str, inline_key: str, sidecar: SimulatedRuntimeSidecar
) -> None:
    def keyed(name: str, ref: dict[str, str] | None = None, **spec: Any) -> Raw:
        document = adapter_manifest(name, **spec)
        if ref is not None:
            document["spec"]["apiKeySecretRef"] = ref
        return document

    await sandbox.apply(keyed("keyed", {"name": "engine-key"}))
    await sandbox.apply(keyed("wrong", {"name": "wrong-key"}))
    await sandbox.apply(keyed("late", {"name": "late-key"}))
    await sandbox.apply(keyed("control", {"name": "control-key"}))
    # The inline key (the AIBrix way) is in the spec by the user's choice, and must go nowhere else; the engines
    # want another key, so it ends in a 401.
    await sandbox.apply(keyed("inline", additionalConfig={"api-key": inline_key}))
    await sandbox.apply(keyed("echo", {"name": "engine-key"}, podSelector={"matchLabels": {"pool": "echo"}}))
    await sandbox.apply(
        keyed(
            "echo-s3",
            {"name": "engine-key"},
            artifactURL=S3_URL,
            credentialsSecretRef={"name": "s3-creds"},
            podSelector={"matchLabels": {"pool": "echo-runtime"}},
        )
    )
    await sandbox.apply(
        keyed(
            "s3",
            artifactURL=S3_URL,
            credentialsSecretRef={"name": "s3-creds"},
            podSelector={"matchLabels": {"pool": "runtime"}},
        )
    )
    await sandbox.apply(keyed("stolen", {"name": "stolen", "namespace": "kube-system"}))
    await sandbox.apply(
        keyed(
            "stolen-creds",
            artifactURL=S3_URL,
            credentialsSecretRef={"name": "stolen", "namespace": "kube-system"},
            podSelector={"matchLabels": {"pool": "runtime"}},
        )
    )
    # Specs the operator refuses (one recorded as SpecRejected) keep the key they hold to themselves.
    await sandbox.apply(keyed("inline-bad", additionalConfig={"api-key": f"{inline_key}\n"}))
    await sandbox.apply(keyed("no-name", {"name": "engine-key"}, credentialsSecretRef={}))
    # A Secret name that is no DNS subdomain is refused by the CRD (and by the operator, under AIBrix's CRD).
    for name, reference in (("traversal", "../kube-system/secrets/stolen"), ("encoded", "kube-system%2Fstolen")):
        with pytest.raises(KubeError) as refused:
            await sandbox.apply(keyed(name, {"name": reference}))
        assert refused.value.status == 422 and "spec.apiKeySecretRef.name: " in refused.value.message
    await sandbox.phase("Running", "keyed", timeout=20)
    await sandbox.phase("Running", "s3", timeout=20)
    for name, reason, words in (
        ("wrong", "ModelAdapterLoadingError", "Unauthorized"),
        ("inline", "ModelAdapterLoadingError", "Unauthorized"),
        (
            "control",
            "SecretInvalid",
            "spec.apiKeySecretRef.key: the value of key 'api-key' of Secret default/control-key cannot be sent in an HTTP header",
        ),
        ("echo", "ModelAdapterLoadingError", "bad request with key ***"),
        ("echo-s3", "ModelAdapterLoadingError", "no: key ***, credentials ***"),
        ("late", "SecretNotFound", "spec.apiKeySecretRef.name: Secret default/late-key not found"),
        ("stolen", "SecretNotFound", "spec.apiKeySecretRef.name: Secret default/stolen not found"),
        ("stolen-creds", "SecretNotFound", "spec.credentialsSecretRef.name: Secret default/stolen not found"),
        ("inline-bad", "InvalidSpec", 'spec.additionalConfig["api-key"]: the API key contains a line break'),
        ("no-name", "InvalidSpec", "spec.credentialsSecretRef.name: "),
    ):
        status = await sandbox.phase("Failed", name, timeout=20)
        ready = {c["type"]: c for c in status["conditions"]}["Ready"]
        assert ready["reason"] == reason and words in ready["message"], (name, ready)
    # The CRD has no `namespace` in either reference: a real kube-apiserver prunes it, and so does the emulator.
    stolen = await sandbox.adapter("stolen")
    assert stolen["spec"]["apiKeySecretRef"] == {"name": "stolen"}
    # A missing Secret, then created: picked up on the next look.
    await sandbox.kube.create(SECRETS, "default", secret("late-key", {"api-key": api_key}))
    await sandbox.phase("Running", "late", timeout=20)
    # Deleting unloads with the key (the unload path sends it too).
    for name in ("keyed", "s3", "late"):
        await sandbox.delete(name)
    for name in ("keyed", "s3", "late"):
        await sandbox.eventually(lambda: sandbox.gone(name), timeout=20, what=f"{name} to be deleted")
    assert any("artifact_url" not in body for body in sidecar.received), "the sidecar saw no unload"


def shipped_manifests() -> list[dict[str, Any]]:
    """The objects `modeladapter manifests` prints (without going through stdout)."""
    return operator_manifests()


def check_secret_reads(requests: list[ApiRequest]) -> None:
    operator = [r for r in requests if not r.authorized]
    assert len(operator) > 50, "the recorder saw too little of the operator"
    reads = [r for r in operator if r.resource.split("/")[0] == "secrets"]
    assert reads, "the operator read no Secret"
    assert {r.verb for r in reads} == {"get"}, sorted({(r.verb, r.path) for r in reads})
    assert {r.namespace for r in reads} == {"default"}, sorted({r.path for r in reads})
    assert {r.name for r in reads} <= {"engine-key", "wrong-key", "late-key", "control-key", "s3-creds", "stolen"}


def check_rbac_covers(requests: list[ApiRequest], documents: list[dict[str, Any]]) -> None:
    """Every request the operator made is allowed by the shipped ClusterRole (or, for the Lease, the Role)."""
    refused = set()
    for request in requests:
        if request.authorized:
            continue
        group, _ = request.group_and_rest
        if not allowed(documents, request.verb, group, request.resource, lease_namespace=request.resource == "leases"):
            refused.add((request.verb, group, request.resource))
    assert not refused, sorted(refused)


# --- (c) engine calls cannot be steered ----------------------------------------------------------------------------

ENGINE_ROUTES = {"/v1/models", "/v1/load_lora_adapter", "/v1/unload_lora_adapter"}


@dataclass
class Bait:
    """An HTTP server that answers like an engine with nothing loaded, and remembers who asked what."""

    host: str
    port: int
    requests: list[tuple[str, str]] = field(default_factory=list)
    runner: web.AppRunner | None = None

    async def start(self) -> Bait:
        async def answer(request: web.Request) -> web.Response:
            self.requests.append((request.method, request.path))
            return web.json_response({"object": "list", "data": []})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.host, self.port).start()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def test_engine_calls_go_only_to_matching_pods_in_the_adapters_namespace(tmp_path: Path) -> None:
    async with open_world(tmp_path, engines=4) as sandbox:
        ips = [engine.host for engine in sandbox.fleet.engines]
        block = ips[0].rsplit(".", 1)[0]
        old = datetime.now(UTC) - timedelta(minutes=5)
        await sandbox.kube.create(
            Resource("", "v1", "namespaces", "Namespace", namespaced=False),
            None,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}},
        )
        pods = {
            "a": ("default", POD_LABELS),
            "b": ("default", POD_LABELS),
            "c": ("default", {**POD_LABELS, "model.aibrix.ai/name": "another-model"}),
            "d": ("other", POD_LABELS),
        }
        for (name, (namespace, labels)), ip in zip(pods.items(), ips, strict=True):
            await sandbox.kubelet.create_pod(
                name,
                namespace,
                labels=labels,
                since=old,
                ip=ip,
                annotations={"model.aibrix.ai/engine-url": f"http://{block}.200:8000"},
            )
        ip_of = dict(zip(pods, ips, strict=True))
        free = await Bait(f"{block}.200", 8000).start()
        on_a = await Bait(ip_of["a"], 9999).start()
        on_c = await Bait(ip_of["c"], 9999).start()
        on_d = await Bait(ip_of["d"], 9999).start()
        sent: list[httpx.URL] = []
        try:
            operator = await sandbox.start_operator(FAST)

            async def remember(request: httpx.Request) -> None:
                sent.append(request.url)

            operator.engines.http.event_hooks["request"].append(remember)
            names = await steering_scenario(sandbox, free)
            for name in names:
                await sandbox.delete(name)
            for name in names:
                await sandbox.eventually(lambda: sandbox.gone(name), timeout=20, what=f"{name} to be deleted")
        finally:
            for bait in (free, on_a, on_c, on_d):
                await bait.stop()
        assert sent, "the operator called no engine"
        allowed_targets = {(ip_of["a"], 8000), (ip_of["b"], 8000), (ip_of["a"], 9999), (ip_of["b"], 9999)}
        assert {(url.host, url.port) for url in sent} <= allowed_targets, sorted({str(url) for url in sent})
        assert {url.path for url in sent} <= ENGINE_ROUTES
        assert not sandbox.engine("c").calls and not sandbox.fleet.by_ip[ip_of["d"]].calls
        assert not free.requests and not on_c.requests and not on_d.requests
        # Allowed, and documented: the adapter's port label aims the calls at that port of the selected pods.
        assert on_a.requests and {path for _, path in on_a.requests} <= ENGINE_ROUTES
        assert {call.path for pod in ("a", "b") for call in sandbox.engine(pod).calls} <= ENGINE_ROUTES


async def steering_scenario(sandbox: Sandbox, bait: Bait) -> list[str]:
    """Adapters that try to aim the operator elsewhere; each must end as its spec deserves."""
    for name, url in (
        ("imds", "http://169.254.169.254/latest/meta-data/iam"),
        ("file-url", "file:///etc/passwd"),
        ("bait-url", f"{bait.url}/adapter"),
    ):
        with pytest.raises(KubeError) as refused:
            await sandbox.kube.create(MODELADAPTERS, "default", adapter_manifest(name, artifactURL=url))
        assert refused.value.status == 422 and "spec.artifactURL: " in refused.value.message
    cases: dict[str, tuple[Raw, str, str]] = {
        "normal": (adapter_manifest("normal"), "Running", ""),
        "hf-host": (adapter_manifest("hf-host", artifactURL=f"hf://{bait.host}/adapter"), "Failed", "ArtifactNotFound"),
        "abs-path": (adapter_manifest("abs-path", artifactURL="/etc/passwd"), "Failed", "Loading failed on all pods: "),
        "annotated": (adapter_manifest("annotated"), "Running", ""),
        "port-9999": (adapter_manifest("port-9999"), "Failed", "port-9999"),
    }
    annotated = cases["annotated"][0]["metadata"]
    annotated["labels"].update({"model.aibrix.ai/engine": "sglang", "engine-host": bait.host})
    annotated["annotations"] = {
        "model.aibrix.ai/engine-url": bait.url,
        "model.aibrix.ai/port": str(bait.port),
        "adapter.model.aibrix.ai/endpoint": f"{bait.host}:{bait.port}",
    }
    cases["port-9999"][0]["metadata"]["labels"]["model.aibrix.ai/port"] = "9999"
    for document, _, _ in cases.values():
        await sandbox.kube.create(MODELADAPTERS, "default", document)
    for name, (_, phase, words) in cases.items():
        status = await sandbox.phase(phase, name, timeout=20)
        if phase == "Running":
            assert status["readyReplicas"] == 2 and sorted(status["instances"]) == ["a", "b"], (name, status)
        elif name != "port-9999":
            ready = {c["type"]: c for c in status["conditions"]}["Ready"]
            assert words in ready["message"], (name, ready)
    return list(cases)
