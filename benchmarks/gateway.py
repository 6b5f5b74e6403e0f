"""How soon the sandbox's Envoy gateway routes by a changed EndpointSlice: from the write in the API server to
every request for that model landing on exactly the new endpoints (`x-gateway-upstream`).

An API emulator, three simulated engines (on 127.0.9.2-4, so any sandbox on 127.0.0.2 is left alone) and the
gateway; no operator: the benchmark writes a Service owned by a ModelAdapter and its EndpointSlice itself, then
moves the slice between endpoint sets and times each move. The requests go to an adapter no engine holds: the
engine's 404 carries the header as well as a 200 would, and only where a request lands is measured.

    .venv/bin/python benchmarks/gateway.py [--moves 40]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a plain script: `benchmarks` is imported from the repository
    sys.path.insert(0, str(REPO))

from modeladapter.operator.kube.client import ENDPOINTSLICES, MODELADAPTERS, SERVICES, Kube  # noqa: E402
from modeladapter.operator.kube.manifests import modeladapter_crd  # noqa: E402
from modeladapter.sandbox.addresses import free_port  # noqa: E402
from modeladapter.sandbox.apiserver import ApiServer  # noqa: E402
from modeladapter.sandbox.engine.fleet import EngineFleet  # noqa: E402
from modeladapter.sandbox.gateway.envoy_config import UPSTREAM_HEADER  # noqa: E402
from modeladapter.sandbox.gateway.gateway import Gateway  # noqa: E402

MODEL = "bench-lora"
FIRST_IP = "127.0.9.2"


@dataclass(frozen=True)
class Follow:
    p50_ms: float
    p95_ms: float
    max_ms: float
    moves: int


def _owner(adapter: dict[str, Any]) -> dict[str, object]:
    uid = adapter["metadata"]["uid"]
    return {
        "apiVersion": MODELADAPTERS.api_version,
        "kind": "ModelAdapter",
        "name": MODEL,
        "uid": uid,
        "controller": True,
    }


def _slice(addresses: list[str], owner: dict[str, object]) -> dict[str, object]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": MODEL,
            "namespace": "default",
            "ownerReferences": [owner],
            "labels": {"kubernetes.io/service-name": MODEL},
        },  # fmt: skip
        "addressType": "IPv4",
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
        "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}],
    }


async def follow(moves: int = 40) -> Follow:
    with tempfile.TemporaryDirectory(prefix="modeladapter-gateway-bench-") as directory:
        async with ApiServer() as server, EngineFleet(3, first_ip=FIRST_IP) as fleet:
            kubeconfig = server.write_kubeconfig(Path(directory) / "kubeconfig")
            server.seed(modeladapter_crd())
            kube = await Kube.connect(str(kubeconfig))
            try:
                # An owner that exists: the emulator's garbage collector removes objects whose owner does not.
                adapter = await kube.create(MODELADAPTERS, "default", {
                    "apiVersion": MODELADAPTERS.api_version, "kind": "ModelAdapter",
                    "metadata": {"name": MODEL, "namespace": "default"},
                    "spec": {"artifactURL": "/nowhere", "podSelector": {"matchLabels": {"none": "none"}}},
                })  # fmt: skip
                owner = _owner(adapter)
                service = {"apiVersion": "v1", "kind": "Service",
                           "metadata": {"name": MODEL, "namespace": "default", "ownerReferences": [owner]},
                           "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 8000}]}}  # fmt: skip
                await kube.create(SERVICES, "default", service)
                ips = [engine.host for engine in fleet.engines]
                await kube.create(ENDPOINTSLICES, "default", _slice(ips[:1], owner))
                async with Gateway(kube, Path(directory) / "gateway", port=free_port()) as gateway:
                    async with httpx.AsyncClient(base_url=gateway.url, timeout=5) as client:
                        await _landing_on(client, {ips[0]})
                        seconds = []
                        for move in range(moves):
                            chosen = [ips[(move + 1 + k) % 3] for k in range(1 + move % 2)]
                            await kube.patch(
                                ENDPOINTSLICES, "default", MODEL, {"endpoints": _slice(chosen, owner)["endpoints"]}
                            )
                            written = time.monotonic()
                            await _landing_on(client, set(chosen))
                            seconds.append(time.monotonic() - written)
            finally:
                await kube.close()
    ms = sorted(s * 1000 for s in seconds)
    return Follow(statistics.median(ms), ms[int(0.95 * (len(ms) - 1))], ms[-1], len(ms))


async def _landing_on(client: httpx.AsyncClient, addresses: set[str], *, timeout: float = 10.0) -> None:
    """Until 3 requests per address land on exactly `addresses` (polled every 5 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = set()
        for _ in range(3 * len(addresses)):
            answer = await client.post("/v1/completions", json={"model": MODEL, "prompt": "x", "max_tokens": 1})
            seen.add(answer.headers.get(UPSTREAM_HEADER, "none").rsplit(":", 1)[0])
        if seen == addresses:
            return
        await asyncio.sleep(0.005)
    raise TimeoutError(f"the gateway did not route to {sorted(addresses)} within {timeout:g} s")


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--moves", type=int, default=40)
    found = await follow(parser.parse_args(argv).moves)
    print(f"gateway follows an EndpointSlice change: p50 {found.p50_ms:.0f} ms, p95 {found.p95_ms:.0f} ms, "
          f"max {found.max_ms:.0f} ms over {found.moves} moves")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
