"""Requests sent to a real Envoy by adapter name land on the pods the adapter's EndpointSlice lists, and follow
it within a second: through a scale-up, a pod loss and a deletion (`modeladapter.sandbox.gateway`).

The gateway reads only the API server (Services, EndpointSlices, pods), as a cluster's gateway does; every
answer it routes says which endpoint served it (`x-gateway-upstream`), which is how these tests see where a
request landed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from modeladapter.sandbox.engine.adapter_files import write_peft_adapter
from modeladapter.sandbox.engine.faults import Fault
from modeladapter.sandbox.gateway.envoy_config import UPSTREAM_HEADER
from modeladapter.sandbox.gateway.gateway import Gateway
from tests.e2e.conftest import BASE_MODEL, FAST, Sandbox, adapter_manifest, free_port

FOLLOWS_WITHIN = 1.0
"""Seconds from the API server's change to the gateway routing by it."""
DRAINING = replace(FAST, drain=timedelta(seconds=0.5))
"""The operator leaves the gateway this long to follow a pod's leaving the EndpointSlice before it unloads there."""


@pytest.fixture
async def gateway(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with Gateway(sandbox.kube, tmp_path / "gateway", port=free_port()) as running:
        yield running


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=5.0) as http:
        yield http


async def complete(client: httpx.AsyncClient, model: str) -> httpx.Response:
    return await client.post("/v1/completions", json={"model": model, "prompt": "def fib(n):", "max_tokens": 2})


async def landing(client: httpx.AsyncClient, model: str = "qwen-code-lora", *, requests: int = 12) -> set[str]:
    """The pod addresses that served `requests` completions (each must succeed)."""
    where = await _served_by(client, model, requests)
    assert where is not None, f"a request for {model} failed"
    return where


async def _served_by(client: httpx.AsyncClient, model: str, requests: int) -> set[str] | None:
    """The addresses that served `requests` completions; None if one did not succeed."""
    where = set()
    for _ in range(requests):
        answer = await complete(client, model)
        if answer.status_code != 200:
            return None
        where.add(answer.headers[UPSTREAM_HEADER].rsplit(":", 1)[0])
    return where


def listed(sandbox: Sandbox, name: str = "qwen-code-lora") -> set[str]:
    """The addresses the adapter's EndpointSlice lists in the API server now."""
    found = sandbox.server.get("discovery.k8s.io/v1", "EndpointSlice", sandbox.namespace, name) or {}
    return {a for e in found.get("endpoints") or [] for a in e.get("addresses") or []}


async def followed(sandbox: Sandbox, client: httpx.AsyncClient, addresses: set[str], *, what: str) -> float:
    """Seconds from the EndpointSlice listing `addresses` to every request landing on exactly those."""
    await sandbox.eventually(lambda: _true(listed(sandbox) == addresses), timeout=15, what=f"the slice: {what}")
    changed = time.monotonic()
    await sandbox.eventually(
        lambda: _landing_is(client, addresses), timeout=FOLLOWS_WITHIN, what=f"the gateway to follow: {what}"
    )
    return time.monotonic() - changed


async def _true(value: bool) -> bool:
    return value


async def _landing_is(client: httpx.AsyncClient, addresses: set[str], model: str = "qwen-code-lora") -> bool:
    return await _served_by(client, model, 3 * len(addresses)) == addresses


@dataclass
class Traffic:
    """Completions sent one after another until stopped: what a client saw meanwhile."""

    client: httpx.AsyncClient
    statuses: list[int] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Traffic:
        self.task = asyncio.create_task(self._send())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def _send(self) -> None:
        while True:
            self.statuses.append((await complete(self.client, "qwen-code-lora")).status_code)
            await asyncio.sleep(0.01)


async def test_a_request_by_adapter_name_lands_only_on_the_adapters_instances(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    await sandbox.add_pods(3)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=2))
    running = await sandbox.phase("Running")
    instances = {sandbox.pod_ip(p) for p in running["instances"]}
    await followed(sandbox, client, instances, what="two instances")
    assert await landing(client, requests=20) == instances


async def test_the_base_model_name_reaches_every_ready_pod_of_the_base_model(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    pods = await sandbox.add_pods(2)
    every = {sandbox.pod_ip(p) for p in pods}
    await sandbox.eventually(lambda: _landing_is(client, every, BASE_MODEL), timeout=5, what="the base model")


async def test_unknown_models_missing_models_and_the_model_list_answer_like_openai(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    await sandbox.add_pods(1)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest())
    await sandbox.phase("Running")
    await followed(sandbox, client, listed(sandbox), what="the adapter")

    unknown = await complete(client, "no-such-lora")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "model_not_found" and "no-such-lora" in unknown.json()["error"]["message"]
    nameless = await client.post("/v1/completions", json={"prompt": "x"})
    assert nameless.status_code == 400 and nameless.json()["error"]["code"] == "model_missing"
    models = (await client.get("/v1/models")).json()
    assert {m["id"] for m in models["data"]} == {"qwen-code-lora", BASE_MODEL}


async def test_a_scale_up_is_followed_within_a_second_and_no_request_fails(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    await sandbox.add_pods(3)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    await sandbox.phase("Running")
    await followed(sandbox, client, listed(sandbox), what="one instance")
    async with Traffic(client) as traffic:
        await sandbox.apply(adapter_manifest(replicas=3))
        await sandbox.instances_ready(3)
        await followed(sandbox, client, listed(sandbox), what="three instances")
    assert len(listed(sandbox)) == 3
    assert traffic.statuses and set(traffic.statuses) == {200}, traffic.statuses


async def test_a_lost_pod_is_left_out_within_a_second_and_no_request_fails(
    sandbox: Sandbox, client: httpx.AsyncClient, gateway: Gateway
) -> None:
    await sandbox.add_pods(3)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest())
    await sandbox.instances_ready(3)
    await followed(sandbox, client, listed(sandbox), what="three instances")
    lost = (await sandbox.status())["instances"][0]
    lost_ip = sandbox.pod_ip(lost)
    async with Traffic(client) as traffic:
        # The node dies: its engine stops answering before the API server hears of it.
        await sandbox.engine(lost).refuse_connections()
        await asyncio.sleep(0.2)
        await sandbox.kubelet.delete(lost)
        remaining = listed(sandbox) - {lost_ip}
        await sandbox.eventually(lambda: _true(listed(sandbox) == remaining), timeout=15, what="the slice")
        changed = time.monotonic()
        # Envoy's own view: a request that fails to connect is retried elsewhere, so where requests land
        # cannot show whether the gateway followed the slice.
        await sandbox.eventually(
            lambda: _envoy_holds(gateway, remaining), timeout=FOLLOWS_WITHIN, what="Envoy to drop the lost pod"
        )
        assert time.monotonic() - changed < FOLLOWS_WITHIN
    assert lost_ip not in listed(sandbox)
    assert traffic.statuses and set(traffic.statuses) == {200}, traffic.statuses


async def _envoy_holds(gateway: Gateway, addresses: set[str]) -> bool:
    return await gateway.envoy_endpoints("qwen-code-lora") == {f"{address}:8000" for address in addresses}


async def test_only_the_bodys_top_level_model_chooses_the_route(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    await sandbox.add_pods(3)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest(replicas=1))
    (instance,) = (await sandbox.phase("Running"))["instances"]
    await followed(sandbox, client, listed(sandbox), what="one instance")
    body = {"metadata": {"model": BASE_MODEL}, "prompt": "x", "max_tokens": 1, "model": "qwen-code-lora"}
    for _ in range(6):
        answer = await client.post("/v1/completions", json=body)
        assert answer.status_code == 200 and answer.headers[UPSTREAM_HEADER] == f"{sandbox.pod_ip(instance)}:8000"
    spoofed = await client.post("/v1/completions", json={"prompt": "x"}, headers={"model": "qwen-code-lora"})
    assert spoofed.status_code == 400, "a model header the client sends chooses nothing"


async def test_a_deleted_adapter_answers_404_within_a_second_of_its_service_going(
    sandbox: Sandbox, client: httpx.AsyncClient, gateway: Gateway
) -> None:
    await sandbox.add_pods(2)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest())
    await sandbox.instances_ready(2)
    await followed(sandbox, client, listed(sandbox), what="two instances")
    await sandbox.delete()
    await sandbox.eventually(sandbox.gone, what="the adapter deleted")
    await sandbox.eventually(
        lambda: _true(sandbox.server.get("v1", "Service", sandbox.namespace, "qwen-code-lora") is None),
        what="its Service collected",
    )
    gone = time.monotonic()
    await sandbox.eventually(lambda: _status_is(client, 404), timeout=FOLLOWS_WITHIN, what="404")
    assert gateway.routed("qwen-code-lora") is None and time.monotonic() - gone < FOLLOWS_WITHIN


async def _status_is(client: httpx.AsyncClient, status: int) -> bool:
    return (await complete(client, "qwen-code-lora")).status_code == status


async def test_an_adapter_with_no_ready_endpoint_answers_503_naming_it(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    pods = await sandbox.add_pods(1)
    await sandbox.start_operator()
    await sandbox.apply(adapter_manifest())
    await sandbox.phase("Running")
    await followed(sandbox, client, listed(sandbox), what="one instance")
    await sandbox.kubelet.mark_not_ready(pods[0])
    await sandbox.eventually(lambda: _true(listed(sandbox) == set()), what="the slice emptied")
    await sandbox.eventually(lambda: _status_is(client, 503), timeout=FOLLOWS_WITHIN, what="503")
    answer = await complete(client, "qwen-code-lora")
    assert (
        answer.json()["error"]["code"] == "model_unavailable" and "qwen-code-lora" in answer.json()["error"]["message"]
    )


async def test_a_scale_down_is_followed_within_a_second_and_no_request_fails(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    await sandbox.add_pods(3)
    await sandbox.start_operator(DRAINING)
    await sandbox.apply(adapter_manifest(replicas=3))
    await sandbox.instances_ready(3)
    await followed(sandbox, client, listed(sandbox), what="three instances")
    async with Traffic(client) as traffic:
        await sandbox.apply(adapter_manifest(replicas=1))
        await sandbox.eventually(lambda: _true(len(listed(sandbox)) == 1), what="one instance listed")
        await followed(sandbox, client, listed(sandbox), what="one instance")
        await sandbox.eventually(lambda: _unloaded_but_one(sandbox), what="the surplus unloaded")
    assert traffic.statuses and set(traffic.statuses) == {200}, traffic.statuses


async def _unloaded_but_one(sandbox: Sandbox) -> bool:
    return sum("qwen-code-lora" in engine.adapters for engine in sandbox.fleet.engines) == 1


async def test_a_rolling_update_is_followed_pod_by_pod_and_no_request_fails(
    sandbox: Sandbox, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    pods = await sandbox.add_pods(3)
    old = str(write_peft_adapter(tmp_path / "v1"))
    new = str(write_peft_adapter(tmp_path / "v2", rank=4))
    await sandbox.start_operator(DRAINING)
    await sandbox.apply(adapter_manifest(artifactURL=old))
    await sandbox.instances_ready(3)
    await followed(sandbox, client, listed(sandbox), what="three instances")
    for pod in pods:
        sandbox.engine(pod).inject(Fault(delay=0.15), route="load", times=None)
    async with Traffic(client) as traffic:
        await sandbox.apply(adapter_manifest(artifactURL=new))
        await sandbox.eventually(lambda: _serving_everywhere(sandbox, pods, new), timeout=20, what="the update")
        await followed(sandbox, client, listed(sandbox), what="three updated instances")
    assert traffic.statuses and set(traffic.statuses) == {200}, traffic.statuses


async def _serving_everywhere(sandbox: Sandbox, pods: list[str], path: str) -> bool:
    return all([await sandbox.serves(pod, path=path) for pod in pods])
