"""Fixtures for the Kubernetes API contract suite: one set of tests, two backends.

Every test that takes `kube` runs twice: against the emulator (`emulator`, a fresh `ApiServer` per test) and
against a real kube-apiserver v1.20.2 + etcd + kube-controller-manager (`real`, started once per session by
`modeladapter.sandbox.realcluster`). Both have the ModelAdapter CRD installed. If the real lane's binaries
are missing, its tests fail and name `.ci/prepare/20-kube-apiserver`; they never skip.

Tests marked `emulator_only` (kube-apiserver v1.20 has no `discovery.k8s.io/v1`) are not collected for the
real backend.

`kube` talks raw HTTP (status codes, reasons and bodies are what the contract is about); `kube.kubeconfig`
is a file for kubernetes-asyncio and kubectl. Each test gets its own namespace (`kube.namespace`).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from modeladapter.operator.kube.manifests import modeladapter_crd
from modeladapter.sandbox.apiserver import ApiServer
from modeladapter.sandbox.realcluster import RealCluster, RealClusterUnavailable

T = TypeVar("T")
JsonDict = dict[str, Any]
BACKENDS = ["emulator", "real"]
MA_GROUP_VERSION = "/apis/model.aibrix.ai/v1alpha1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "emulator_only: the behaviour does not exist in kube-apiserver v1.20 (discovery.k8s.io/v1)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_real = callspec is not None and callspec.params.get("kube") == "real"
        (dropped if on_real and item.get_closest_marker("emulator_only") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def real_cluster() -> Iterator[RealCluster]:
    try:
        cluster = RealCluster.start(crds=[modeladapter_crd()])
    except RealClusterUnavailable as missing:
        pytest.fail(str(missing), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def reason(self) -> str | None:
        return self.body.get("reason") if isinstance(self.body, dict) else None

    def __repr__(self) -> str:
        return f"Response({self.status}, {json.dumps(self.body)[:2000] if not isinstance(self.body, str) else self.body[:500]})"


class Kube:
    """A raw HTTP client for one backend, bound to one test namespace."""

    def __init__(
        self,
        backend: str,
        url: str,
        token: str,
        kubeconfig: Path,
        session: aiohttp.ClientSession,
        server: ApiServer | None,
    ) -> None:
        self.backend = backend
        self.url = url
        self.token = token
        self.kubeconfig = kubeconfig
        self.session = session
        self.server = server
        self.namespace = ""

    @property
    def real(self) -> bool:
        return self.backend == "real"

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> Response:
        sent = dict(headers or {})
        if body is not None or data is not None:
            sent.setdefault("Content-Type", content_type)
        payload = data if data is not None else (json.dumps(body).encode() if body is not None else None)
        async with self.session.request(method, self.url + path, data=payload, params=params, headers=sent) as r:
            text = await r.text()
            try:
                parsed: Any = json.loads(text)
            except ValueError:
                parsed = text
            return Response(r.status, parsed, dict(r.headers))

    async def get(self, path: str, **kwargs: Any) -> Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, body: Any, **kwargs: Any) -> Response:
        return await self.request("POST", path, body, **kwargs)

    async def put(self, path: str, body: Any, **kwargs: Any) -> Response:
        return await self.request("PUT", path, body, **kwargs)

    async def patch(self, path: str, body: Any, kind: str = "merge", **kwargs: Any) -> Response:
        types = {
            "merge": "application/merge-patch+json",
            "json": "application/json-patch+json",
            "strategic": "application/strategic-merge-patch+json",
        }
        return await self.request("PATCH", path, body, content_type=types.get(kind, kind), **kwargs)

    async def delete(self, path: str, body: Any = None, **kwargs: Any) -> Response:
        return await self.request("DELETE", path, body, **kwargs)

    async def create(self, path: str, body: JsonDict) -> JsonDict:
        response = await self.post(path, body)
        assert response.status == 201, response
        assert isinstance(response.body, dict)
        return response.body

    # --- paths in this test's namespace -------------------------------------------------------------------------

    def ma(self, name: str = "", sub: str = "") -> str:
        return self.path(MA_GROUP_VERSION, "modeladapters", name, sub)

    def core(self, plural: str, name: str = "", sub: str = "") -> str:
        return self.path("/api/v1", plural, name, sub)

    def path(self, group_version: str, plural: str, name: str = "", sub: str = "") -> str:
        parts = [group_version, "namespaces", self.namespace, plural] + [p for p in (name, sub) if p]
        return "/".join(parts)

    # --- helpers ------------------------------------------------------------------------------------------------

    @staticmethod
    async def eventually(
        check: Callable[[], Awaitable[T | None]],
        *,
        timeout: float = 60.0,
        interval: float = 0.25,
        what: str = "the condition",
    ) -> T:
        """Poll until `check` returns something truthy. Real garbage collection runs in kube-controller-manager
        and takes seconds; the emulator's controllers run within milliseconds, so the bound matters for `real`."""
        deadline = time.monotonic() + timeout
        while True:
            result = await check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
            await asyncio.sleep(interval)

    async def gone(self, path: str, *, timeout: float = 60.0) -> bool:
        async def check() -> bool:
            return (await self.get(path)).status == 404

        return await self.eventually(check, timeout=timeout, what=f"{path} to disappear")

    @staticmethod
    def adapter(name: str, **spec: Any) -> JsonDict:
        """A ModelAdapter manifest as AIBrix's samples write it."""
        body = {
            "podSelector": {"matchLabels": {"model.aibrix.ai/name": "base"}},
            "artifactURL": "huggingface://org/repo",
            **spec,
        }
        return {
            "apiVersion": "model.aibrix.ai/v1alpha1",
            "kind": "ModelAdapter",
            "metadata": {"name": name},
            "spec": body,
        }

    @staticmethod
    def pod(name: str, node: str = "", **labels: str) -> JsonDict:
        spec: JsonDict = {"containers": [{"name": "engine", "image": "vllm/vllm-openai:v0.6.0"}]}
        if node:
            spec["nodeName"] = node
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": spec}

    # --- watches ------------------------------------------------------------------------------------------------

    def watch(self, path: str, **params: str) -> Watch:
        return Watch(self, path, {"watch": "true", **params})


class Watch:
    """An open watch stream: `await w.next()` returns the next event (or None when the server closed it)."""

    def __init__(self, kube: Kube, path: str, params: dict[str, str]) -> None:
        self.kube = kube
        self.path = path
        self.params = params
        self.response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> Watch:
        self.response = await self.kube.session.get(
            self.kube.url + self.path, params=self.params, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)
        )
        assert self.response.status == 200, await self.response.text()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self.response is not None:
            self.response.close()

    async def next(self, timeout: float = 10.0) -> JsonDict | None:
        assert self.response is not None
        line = await asyncio.wait_for(self.response.content.readline(), timeout)
        if not line:
            return None
        event: JsonDict = json.loads(line)
        return event

    async def next_non_bookmark(self, timeout: float = 10.0) -> JsonDict | None:
        while True:
            event = await self.next(timeout)
            if event is None or event["type"] != "BOOKMARK":
                return event

    async def collect(self, count: int, timeout: float = 10.0) -> list[JsonDict]:
        events = []
        while len(events) < count:
            event = await self.next_non_bookmark(timeout)
            assert event is not None, f"stream closed after {events}"
            events.append(event)
        return events

    async def nothing_more(self, within: float = 0.8) -> bool:
        try:
            event = await self.next_non_bookmark(within)
        except TimeoutError:
            return True
        return event is None


@pytest.fixture(params=BACKENDS)
async def kube(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Kube]:
    connector = aiohttp.TCPConnector(ssl=False, limit=20)
    server: ApiServer | None = None
    if request.param == "emulator":
        server = await ApiServer().start()
        server.seed(modeladapter_crd())
        url, token = server.url, server.token
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    else:
        cluster: RealCluster = request.getfixturevalue("real_cluster")
        url, token = cluster.url, cluster.token
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    session = aiohttp.ClientSession(
        connector=connector, headers={"Authorization": f"Bearer {token}"}, timeout=aiohttp.ClientTimeout(total=60)
    )
    client = Kube(request.param, url, token, kubeconfig, session, server)
    client.namespace = f"t-{uuid.uuid4().hex[:10]}"
    try:
        created = await client.post("/api/v1/namespaces", {"metadata": {"name": client.namespace}})
        assert created.status == 201, created
        yield client
    finally:
        try:
            await client.delete(f"/api/v1/namespaces/{client.namespace}")
        finally:
            await session.close()
            if server is not None:
                await server.stop()
