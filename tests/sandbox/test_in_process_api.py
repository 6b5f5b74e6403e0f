"""The emulator as the operator's tests and `modeladapter sandbox` use it: started and stopped inside the
event loop, seeded and inspected directly, with hooks to cut watch streams and expire history, and runnable
alone with `python -m modeladapter.sandbox.apiserver`. Emulator only: these are not kube-apiserver behaviours.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml

from modeladapter.operator.kube.manifests import modeladapter_crd
from modeladapter.sandbox.apiserver import ApiServer
from modeladapter.sandbox.apiserver.store import Store

ADAPTERS = "/apis/model.aibrix.ai/v1alpha1/namespaces/default/modeladapters"


def adapter(name: str) -> dict[str, object]:
    return {
        "apiVersion": "model.aibrix.ai/v1alpha1",
        "kind": "ModelAdapter",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"podSelector": {}, "artifactURL": "s3://bucket/lora"},
    }


async def read_events(response: aiohttp.ClientResponse, timeout: float = 5.0) -> list[dict[str, object]]:
    events = []
    while line := await asyncio.wait_for(response.content.readline(), timeout):
        events.append(json.loads(line))
    return events


async def test_it_starts_on_a_free_port_and_writes_a_kubeconfig(tmp_path: Path) -> None:
    async with ApiServer() as server:
        assert server.url.startswith("http://127.0.0.1:") and server.port > 0
        config = yaml.safe_load(server.write_kubeconfig(tmp_path / "kubeconfig").read_text())
        assert config["clusters"][0]["cluster"]["server"] == server.url
        assert config["users"][0]["user"]["token"] == server.token
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + "/api/v1/namespaces") as response:
                names = [n["metadata"]["name"] for n in (await response.json())["items"]]
    assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]


async def test_a_fresh_emulator_has_no_crds() -> None:
    async with ApiServer() as server, aiohttp.ClientSession() as session:
        async with session.get(server.url + "/apis/apiextensions.k8s.io/v1/customresourcedefinitions") as r:
            assert (await r.json())["items"] == []
        async with session.get(server.url + ADAPTERS) as r:
            assert r.status == 404


async def test_requests_without_credentials_are_served_for_kubectl_over_plain_http() -> None:
    async with ApiServer() as server, aiohttp.ClientSession() as session:
        async with session.get(server.url + "/api/v1/namespaces/default") as response:
            assert response.status == 200


async def test_seeded_objects_get_server_metadata_and_can_be_read_back() -> None:
    async with ApiServer() as server:
        server.seed(modeladapter_crd())
        seeded = server.seed(adapter("a"))
        assert seeded["metadata"]["generation"] == 1 and seeded["metadata"]["uid"]
        assert [o["metadata"]["name"] for o in server.objects("model.aibrix.ai/v1alpha1", "ModelAdapter")] == ["a"]
        assert server.get("model.aibrix.ai/v1alpha1", "ModelAdapter", "default", "a") == seeded
        assert server.get("model.aibrix.ai/v1alpha1", "ModelAdapter", "default", "b") is None


async def test_cutting_watches_ends_every_open_stream_cleanly() -> None:
    async with ApiServer() as server, aiohttp.ClientSession() as session:
        server.seed(modeladapter_crd())
        async with (
            session.get(server.url + ADAPTERS, params={"watch": "true"}) as first,
            session.get(server.url + "/api/v1/pods", params={"watch": "1"}) as second,
        ):
            await asyncio.sleep(0.05)
            assert server.open_watches == 2
            assert server.cut_watches() == 2
            assert await read_events(first) == [] and await read_events(second) == []
        await asyncio.sleep(0.05)
        assert server.open_watches == 0


async def test_cutting_watches_abruptly_drops_the_connection() -> None:
    async with ApiServer() as server, aiohttp.ClientSession() as session:
        async with session.get(server.url + "/api/v1/pods", params={"watch": "1"}) as response:
            await asyncio.sleep(0.05)
            server.cut_watches(abort=True)
            with pytest.raises(aiohttp.ClientPayloadError):
                await read_events(response)


async def test_compaction_makes_older_resource_versions_expire() -> None:
    async with ApiServer() as server, aiohttp.ClientSession() as session:
        server.seed(modeladapter_crd())
        version = server.seed(adapter("a"))["metadata"]["resourceVersion"]
        server.seed(adapter("b"))
        server.compact()
        params = {"watch": "true", "resourceVersion": version, "timeoutSeconds": "1"}
        async with session.get(server.url + ADAPTERS, params=params) as response:
            events = await read_events(response)
    assert [(e["type"], e["object"]["code"]) for e in events] == [("ERROR", 410)]  # type: ignore[index]


async def test_the_history_window_is_bounded() -> None:
    async with ApiServer(store=Store(history_limit=3)) as server, aiohttp.ClientSession() as session:
        server.seed(modeladapter_crd())
        version = server.seed(adapter("a"))["metadata"]["resourceVersion"]
        for name in "bcde":
            server.seed(adapter(name))
        params = {"watch": "true", "resourceVersion": version, "timeoutSeconds": "1"}
        async with session.get(server.url + ADAPTERS, params=params) as response:
            events = await read_events(response)
    assert events[0]["type"] == "ERROR"


async def test_bookmarks_come_at_the_configured_interval() -> None:
    async with ApiServer(bookmark_interval=0.2) as server, aiohttp.ClientSession() as session:
        params = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "1",
            "resourceVersion": str(server.store.resource_version),
        }
        async with session.get(server.url + "/api/v1/pods", params=params) as response:
            events = await read_events(response)
    assert len([e for e in events if e["type"] == "BOOKMARK"]) >= 3


async def test_an_unexpected_failure_is_a_500_and_the_server_keeps_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    async with ApiServer() as server, aiohttp.ClientSession() as session:

        def broken(*_args: object, **_kwargs: object) -> None:
            raise RuntimeError("boom")

        monkeypatch.setattr(server.store, "get", broken)
        async with session.get(server.url + "/api/v1/namespaces/default") as response:
            body = await response.json()
        assert (response.status, body["reason"]) == (500, "InternalError")
        monkeypatch.undo()
        async with session.get(server.url + "/api/v1/namespaces/default") as response:
            assert response.status == 200


async def test_it_runs_alone_with_python_dash_m(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "modeladapter.sandbox.apiserver",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert "serving on http://127.0.0.1:" in line
        url = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/api/v1/namespaces/default") as response:
                assert response.status == 200
            async with session.get(url + "/apis/apiextensions.k8s.io/v1/customresourcedefinitions") as response:
                assert (await response.json())["items"] == []
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
