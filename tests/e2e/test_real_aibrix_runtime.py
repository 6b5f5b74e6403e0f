"""The operator with `--enable-runtime-sidecar` against AIBrix's real runtime (aibrix 0.8.0), downloading `s3://`
adapters from a local S3 store (moto) with the credentials of the adapter's `credentialsSecretRef`.

Three pods, each with a real `aibrix_runtime` on `<podIP>:8080`: one in front of a real vLLM 0.32 on this CPU
(127.0.0.30:8000, started once for the module), two in front of simulated vLLM engines (127.0.0.31 and .32,
fresh for each test), which read the very files the runtime downloaded. The store holds the real-vLLM lane's
PEFT adapters at `s3://adapters/lora-a/` and `s3://adapters/team/lora-b/`.

Every runtime on this machine downloads into `/tmp/aibrix/adapters/<name>` (it cannot be told otherwise:
`sandbox/engine/aibrix_lane.py`), so each test uses adapter names of its own and clears their folders first.

Never skipped: without the lanes (`.ci/prepare/30-vllm`, `.ci/prepare/40-aibrix-runtime`) the tests fail and
say how to prepare them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from modeladapter.operator.kube.client import MODELADAPTERS, SECRETS, KubeError
from modeladapter.sandbox.engine import Fault, Route, SimulatedEngine
from modeladapter.sandbox.engine.aibrix_lane import DOWNLOADS, AibrixRuntime, MotoServer, RuntimeLane, clear_downloads
from modeladapter.sandbox.engine.vllm_lane import Lane, VllmServer
from tests.e2e.conftest import POD_LABELS, OperatorProcess, Raw, Sandbox, adapter_manifest, free_port
from tests.secret_search import secret_in

pytestmark = [pytest.mark.vllm, pytest.mark.aibrix_runtime]

REAL_ENGINE_IP = "127.0.0.30"
SIMULATED_ENGINE_IPS = ("127.0.0.31", "127.0.0.32")
POD_IPS = (REAL_ENGINE_IP, *SIMULATED_ENGINE_IPS)
PODS = dict(zip(("runtime-vllm-0", "runtime-sim-1", "runtime-sim-2"), POD_IPS, strict=True))
BUCKET = "adapters"
FOLDERS = {"lora-a": "lora-a/", "lora-b": "team/lora-b/"}
"""Lane adapter -> its prefix in the bucket."""
BASE_MODEL = "tiny"
NAME_PREFIX = "rt-"
"""Every adapter of this module is named so: what the runtimes downloaded for them is removed at the end."""
RUNTIME_CONTAINERS: list[Raw] = [
    {"name": "vllm-openai", "image": "vllm/vllm-openai:v0.32.0", "ports": [{"containerPort": 8000}]},
    {"name": "aibrix-runtime", "image": "aibrix/runtime:v0.8.0", "ports": [{"containerPort": 8080}]},
]


@dataclass
class RuntimeWorld:
    store: MotoServer
    engine: VllmServer
    runtimes: dict[str, AibrixRuntime]
    """By pod IP."""


@pytest.fixture(scope="module")
def world() -> Iterator[RuntimeWorld]:
    engine_lane, runtime_lane = Lane(), RuntimeLane()
    for problem in (engine_lane.problem(), runtime_lane.problem()):
        if problem is not None:
            pytest.fail(problem, pytrace=False)
    store = MotoServer("127.0.0.1", free_port(), lane=runtime_lane)
    engine = VllmServer(REAL_ENGINE_IP, 8000, lane=engine_lane)
    runtimes = {ip: AibrixRuntime(ip, s3_endpoint=store.endpoint, lane=runtime_lane) for ip in POD_IPS}
    try:
        engine.launch()  # about 40 s: everything else starts meanwhile
        store.start()
        for adapter, prefix in FOLDERS.items():
            store.upload(engine_lane.adapter(adapter), BUCKET, prefix)
        for runtime in runtimes.values():
            runtime.launch()
        for runtime in runtimes.values():
            runtime.wait()
        _wait_for(engine)
        yield RuntimeWorld(store, engine, runtimes)
    except RuntimeError as error:
        pytest.fail(f"the real-runtime lane did not start: {error}", pytrace=False)
    finally:
        for runtime in runtimes.values():
            runtime.stop()
        engine.stop()
        store.stop()
        clear_downloads(folder.name for folder in DOWNLOADS.glob(f"{NAME_PREFIX}*"))


def _wait_for(engine: VllmServer, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not engine.started():
        if time.monotonic() > deadline:
            raise RuntimeError(f"vLLM did not answer /health within {timeout:.0f} s; see {engine.log_path}")
        time.sleep(0.5)


@pytest.fixture
async def simulated() -> AsyncIterator[dict[str, SimulatedEngine]]:
    engines = {ip: SimulatedEngine(ip, 8000, served_model_name=BASE_MODEL) for ip in SIMULATED_ENGINE_IPS}
    for engine in engines.values():
        await engine.start()
    try:
        yield engines
    finally:
        for engine in engines.values():
            await engine.stop()


@dataclass
class Credentials:
    key_id: str
    secret_key: str

    def secret(self, name: str) -> Raw:
        data = {"aws_access_key_id": self.key_id, "aws_secret_access_key": self.secret_key, "aws_region": "us-east-1"}
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }


async def cluster(
    sandbox: Sandbox, *names: str, pods: tuple[str, ...] = tuple(PODS)
) -> tuple[OperatorProcess, Credentials]:
    """`pods` (default: all three), a Secret `s3-credentials` with fresh random keys, and the operator as a
    process with the runtime sidecar enabled; the download folders of `names` cleared first."""
    clear_downloads(names)
    await add_pods(sandbox, pods)
    credentials = Credentials(f"AKIA{uuid.uuid4().hex[:16].upper()}", f"s3-secret-{uuid.uuid4().hex}")
    await sandbox.kube.create(SECRETS, "default", credentials.secret("s3-credentials"))
    operator = sandbox.spawn_operator("--log-level", "debug", "--enable-runtime-sidecar")
    return operator, credentials


async def add_pods(sandbox: Sandbox, pods: tuple[str, ...]) -> None:
    since = datetime.now(UTC) - timedelta(minutes=5)
    for pod in pods:
        await sandbox.kubelet.create_pod(
            pod, "default", labels=POD_LABELS, ip=PODS[pod], containers=RUNTIME_CONTAINERS, since=since
        )


async def load_everywhere(sandbox: Sandbox, world: RuntimeWorld, *manifests: Raw) -> dict[str, Raw]:
    """Apply `manifests` with only the real-vLLM pod present, then add the simulated pods; each adapter's status
    once it is Running on all three.

    One runtime downloads first because all of them share `/tmp/aibrix/adapters/<name>`: runtimes downloading
    one name at once race on its `.part` files, and the loser fails for good with "Artifact not found: [Errno 2]
    No such file or directory: '<file>.part' -> '<file>'" (seen here). The others find the download complete.
    """
    first = next(iter(PODS))
    await add_pods(sandbox, (first,))
    for manifest in manifests:
        await sandbox.apply(manifest)
    for manifest in manifests:
        await running_everywhere(sandbox, world, manifest["metadata"]["name"], pods=1)
    await add_pods(sandbox, tuple(PODS)[1:])
    return {m["metadata"]["name"]: await running_everywhere(sandbox, world, m["metadata"]["name"]) for m in manifests}


def s3_adapter(name: str, url: str) -> Raw:
    return adapter_manifest(
        name, baseModel=BASE_MODEL, artifactURL=url, credentialsSecretRef={"name": "s3-credentials"}
    )


async def real_engine_root(world: RuntimeWorld, name: str) -> str | None:
    """The `root` under which the real vLLM lists `name`, if it does."""
    async with httpx.AsyncClient() as http:
        cards = (await http.get(f"{world.engine.base_url}/v1/models", timeout=10)).json()["data"]
    return next((card["root"] for card in cards if card["id"] == name), None)


async def running_everywhere(
    sandbox: Sandbox, world: RuntimeWorld, name: str, *, pods: int = len(PODS), timeout: float = 60
) -> Raw:
    """The status once `name` is Running on `pods` pods; on time-out, an error with what each part said."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await sandbox.status(name)
        if status.get("phase") == "Running" and status.get("readyReplicas") == pods:
            return status
        await asyncio.sleep(0.1)
    logs = "\n".join(f"--- {r.what}:\n{r.log_tail(15)}" for r in world.runtimes.values())
    operator = sandbox.processes[-1].log()[-3000:] if sandbox.processes else ""
    raise AssertionError(f"{name} is not Running on {pods} pods: {status}\n{logs}\n--- operator:\n{operator}")


async def ready_condition(sandbox: Sandbox, name: str) -> Raw:
    return {c["type"]: c for c in (await sandbox.status(name)).get("conditions") or []}["Ready"]


class TestDownloadsFromS3:
    async def test_a_folder_url_reaches_running_on_every_pod_with_or_without_the_trailing_slash(
        self, sandbox: Sandbox, world: RuntimeWorld, simulated: dict[str, SimulatedEngine]
    ) -> None:
        with_slash, without_slash = "rt-slash", "rt-no-slash"
        await cluster(sandbox, with_slash, without_slash, pods=())
        statuses = await load_everywhere(
            sandbox,
            world,
            s3_adapter(with_slash, "s3://adapters/lora-a/"),
            s3_adapter(without_slash, "s3://adapters/team/lora-b"),
        )
        for name, status in statuses.items():
            assert sorted(status["instances"]) == sorted(PODS)
            assert await real_engine_root(world, name) == str(DOWNLOADS / name)
            for engine in simulated.values():
                assert engine.adapters[name].path == str(DOWNLOADS / name)
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                f"{world.engine.base_url}/v1/completions",
                json={"model": without_slash, "prompt": "Hello world", "max_tokens": 4, "temperature": 0},
                timeout=60,
            )
        assert answer.status_code == 200 and answer.json()["model"] == without_slash

    async def test_a_missing_prefix_fails_with_a_clear_reason_and_is_not_retried(
        self, sandbox: Sandbox, world: RuntimeWorld, simulated: dict[str, SimulatedEngine]
    ) -> None:
        name = "rt-missing"
        await cluster(sandbox, name)
        await sandbox.apply(s3_adapter(name, "s3://adapters/no-such-adapter/"))
        await sandbox.phase("Failed", name, timeout=60)
        ready = await ready_condition(sandbox, name)
        assert ready["status"] == "False"
        assert "No objects found under S3 prefix: s3://adapters/no-such-adapter/" in ready["message"]
        await asyncio.sleep(2)  # dozens of backoff periods (50 ms base): a retry would have come by now
        assert [world.runtimes[ip].delegations(name) for ip in POD_IPS] == [1, 1, 1]
        assert (await sandbox.status(name))["phase"] == "Failed"

    async def test_a_name_the_runtime_would_refuse_is_refused_by_the_api_before_any_download(
        self, sandbox: Sandbox, world: RuntimeWorld, simulated: dict[str, SimulatedEngine]
    ) -> None:
        # The runtime would download `rt.dotted`, then refuse to hand it to vLLM; the CRD's name rule (a DNS-1035
        # label, which the adapter's Service needs anyway) refuses it before anything is stored.
        name = "rt.dotted"
        await cluster(sandbox, name)
        with pytest.raises(KubeError) as refused:
            await sandbox.kube.create(MODELADAPTERS, "default", s3_adapter(name, "s3://adapters/lora-a/"))
        assert refused.value.status == 422 and "metadata.name" in str(refused.value)
        await asyncio.sleep(1)
        assert [world.runtimes[ip].delegations(name) for ip in POD_IPS] == [0, 0, 0]
        assert not (DOWNLOADS / name).exists()


class TestUnloading:
    async def test_deleting_an_adapter_unloads_it_through_the_runtime_on_every_pod(
        self, sandbox: Sandbox, world: RuntimeWorld, simulated: dict[str, SimulatedEngine]
    ) -> None:
        name = "rt-delete"
        await cluster(sandbox, name, pods=())
        await load_everywhere(sandbox, world, s3_adapter(name, "s3://adapters/lora-a/"))
        await sandbox.delete(name)
        await sandbox.eventually(lambda: sandbox.gone(name), timeout=60, what="the deletion")
        assert await real_engine_root(world, name) is None
        assert all(name not in engine.adapters for engine in simulated.values())
        assert not (DOWNLOADS / name).exists(), "the runtime cleaned up its download"

    async def test_an_unload_the_engine_did_not_do_is_retried_despite_the_runtimes_200(
        self, sandbox: Sandbox, world: RuntimeWorld, simulated: dict[str, SimulatedEngine]
    ) -> None:
        name = "rt-stubborn"
        await cluster(sandbox, name, pods=())
        await load_everywhere(sandbox, world, s3_adapter(name, "s3://adapters/lora-a/"))
        stubborn = simulated[SIMULATED_ENGINE_IPS[0]]
        # The runtime tries an engine's 5xx three times, then answers 200 anyway.
        stubborn.inject(Fault(status=500), route=Route.UNLOAD, times=3)
        await sandbox.delete(name)
        await sandbox.eventually(lambda: sandbox.gone(name), timeout=60, what="the deletion")
        assert name not in stubborn.adapters
        assert [c.status for c in stubborn.calls if c.path == "/v1/unload_lora_adapter"] == [500, 500, 500, 200]
        event_log = "\n".join(sqlite3.connect(sandbox.database_url.removeprefix("sqlite:///")).iterdump())
        assert "UnloadFailed" in event_log and "but the engine still lists it" in event_log
        assert '"outcome": "abandoned"' not in event_log, "the unload was done, not given up"


class TestCredentials:
    async def test_the_secrets_credentials_download_and_appear_nowhere(
        self, sandbox: Sandbox, world: RuntimeWorld, simulated: dict[str, SimulatedEngine]
    ) -> None:
        loaded, missing = "rt-creds", "rt-creds-missing"
        operator, credentials = await cluster(sandbox, loaded, missing, pods=())
        await load_everywhere(sandbox, world, s3_adapter(loaded, "s3://adapters/lora-a"))
        await sandbox.apply(s3_adapter(missing, "s3://adapters/nothing-here"))
        await sandbox.phase("Failed", missing, timeout=60)
        adapters = [await sandbox.adapter(loaded), await sandbox.adapter(missing)]
        await sandbox.delete(loaded)
        await sandbox.delete(missing)
        await sandbox.eventually(lambda: sandbox.gone(loaded), timeout=60, what="the deletion")
        await sandbox.eventually(lambda: sandbox.gone(missing), timeout=60, what="the deletion")
        await operator.terminate()
        places = {
            "the operator's log": operator.log(),
            "Kubernetes Events": json.dumps(sandbox.server.objects("v1", "Event"), ensure_ascii=False),
            "the event log": "\n".join(sqlite3.connect(sandbox.database_url.removeprefix("sqlite:///")).iterdump()),
            "the adapters' status and metadata": json.dumps(
                [{"status": a.get("status"), "metadata": a.get("metadata")} for a in adapters], ensure_ascii=False
            ),
        }
        assert '"level": "DEBUG"' in places["the operator's log"] and "LoadFailed" in places["the event log"]
        leaks = [
            f"{which} in {where}: {fragment!r}"
            for which, value in (("key id", credentials.key_id), ("secret key", credentials.secret_key))
            for where, text in places.items()
            if (fragment := secret_in(value, text, 12)) is not None
        ]
        assert not leaks, leaks
