"""Pods without a kubelet: create them, give them loopback IPs, and move them through their lifecycle.

Neither the emulator nor the real-server lane runs a kubelet, so a pod stays `Pending` with no IP until
someone writes its status. `SimulatedKubelet` plays that part through the API, exactly as a kubelet would (a
strategic-merge patch of `pods/status`), so it works against the emulator and a real kube-apiserver alike:

* `create_pod` schedules the pod on a named node (so deletion is graceful, as for a real pod) and starts it:
  phase Running, `podIP` the lowest free address from 127.0.0.2 upward (the sandbox serves a simulated
  engine on each), Ready or not;
* `mark_ready` / `mark_not_ready` flip the Ready and ContainersReady conditions with a chosen
  `lastTransitionTime` (the operator's 5 s stability window is measured from it);
* `terminate` starts a graceful deletion (deletionTimestamp set, the pod stays, as while a real kubelet stops
  the containers); `delete` removes the pod for good (grace period 0).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes_asyncio import client
from kubernetes_asyncio.client.api_client import ApiClient
from kubernetes_asyncio.client.rest import ApiException

from modeladapter.sandbox.apiserver.meta import rfc3339

JsonDict = dict[str, Any]

FIRST_POD_IP = "127.0.0.2"
NODE_NAME = "sandbox-node"


def next_free_ip(used: Iterable[str], first: str = FIRST_POD_IP) -> str:
    """The lowest address from `first` upward (within 127.0.0.0/8) that no pod uses."""
    taken = set(used)
    address = ipaddress.ip_address(first)
    loopback = ipaddress.ip_network("127.0.0.0/8")
    while address in loopback:
        if str(address) not in taken and not str(address).endswith(".255"):
            return str(address)
        address += 1
    raise RuntimeError("no free loopback address is left for a pod")


def engine_container(image: str = "vllm/vllm-openai:v0.6.0", port: int = 8000) -> JsonDict:
    return {"name": "vllm", "image": image, "ports": [{"name": "http", "containerPort": port}]}


def running_status(ip: str, *, ready: bool, since: datetime, containers: list[JsonDict], started: datetime) -> JsonDict:
    """The status a kubelet reports for a started pod: phase, IPs, conditions and container states."""
    flag = "True" if ready else "False"
    moment = rfc3339(since)
    start = rfc3339(started)
    return {
        "phase": "Running",
        "hostIP": "127.0.0.1",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": start,
        "conditions": [
            {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": start},
            {"type": "Ready", "status": flag, "lastProbeTime": None, "lastTransitionTime": moment},
            {"type": "ContainersReady", "status": flag, "lastProbeTime": None, "lastTransitionTime": moment},
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": start},
        ],
        "containerStatuses": [
            {
                "name": c["name"],
                "ready": ready,
                "started": True,
                "restartCount": 0,
                "image": c.get("image", ""),
                "imageID": "",
                "state": {"running": {"startedAt": start}},
            }
            for c in containers
        ],
    }


class SimulatedKubelet:
    """Creates pods and writes their status through the API, as a kubelet on one node would."""

    def __init__(self, api_client: ApiClient, *, node_name: str = NODE_NAME, first_ip: str = FIRST_POD_IP) -> None:
        self._core = client.CoreV1Api(api_client)
        self.node_name = node_name
        self.first_ip = first_ip

    async def used_ips(self) -> set[str]:
        pods = await self._core.list_pod_for_all_namespaces()
        return {p.status.pod_ip for p in pods.items if p.status is not None and p.status.pod_ip}

    async def create_pod(
        self,
        name: str,
        namespace: str = "default",
        *,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        containers: list[JsonDict] | None = None,
        ready: bool = True,
        since: datetime | None = None,
        ip: str | None = None,
    ) -> JsonDict:
        """Create a running pod with the next free loopback IP; Ready (or not) since `since` (default now)."""
        spec_containers = containers or [engine_container()]
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": dict(labels or {}), "annotations": dict(annotations or {})},
            "spec": {"nodeName": self.node_name, "containers": spec_containers},
        }
        # the client sends a plain dict as it is; the typed model would only be converted back
        await self._core.create_namespaced_pod(namespace, cast(client.V1Pod, body))
        address = ip or next_free_ip(await self.used_ips(), self.first_ip)
        now = datetime.now(UTC)
        status = running_status(address, ready=ready, since=since or now, containers=spec_containers, started=now)
        return await self._patch_status(name, namespace, {"status": status})

    async def mark_ready(self, name: str, namespace: str = "default", *, since: datetime | None = None) -> JsonDict:
        return await self._set_ready(name, namespace, True, since)

    async def mark_not_ready(self, name: str, namespace: str = "default", *, since: datetime | None = None) -> JsonDict:
        return await self._set_ready(name, namespace, False, since)

    async def _set_ready(self, name: str, namespace: str, ready: bool, since: datetime | None) -> JsonDict:
        flag = "True" if ready else "False"
        moment = rfc3339(since or datetime.now(UTC))
        current = await self._raw(self._core.read_namespaced_pod_status(name, namespace, _preload_content=False))
        statuses = (current.get("status") or {}).get("containerStatuses") or []
        patch = {
            "status": {
                "conditions": [
                    {"type": kind, "status": flag, "lastTransitionTime": moment}
                    for kind in ("Ready", "ContainersReady")
                ],
                "containerStatuses": [dict(s, ready=ready) for s in statuses],
            }
        }
        return await self._patch_status(name, namespace, patch)

    async def terminate(self, name: str, namespace: str = "default", *, grace_period_seconds: int = 30) -> JsonDict:
        """Begin a graceful deletion: the pod stays, with a deletionTimestamp, until `delete`."""
        options = client.V1DeleteOptions(grace_period_seconds=grace_period_seconds)
        return await self._raw(self._core.delete_namespaced_pod(name, namespace, body=options, _preload_content=False))

    async def delete(self, name: str, namespace: str = "default") -> None:
        """Remove the pod now (grace period 0), as a kubelet does once the containers have stopped."""
        options = client.V1DeleteOptions(grace_period_seconds=0)
        try:
            await self._core.delete_namespaced_pod(name, namespace, body=options)
        except ApiException as error:
            if error.status != 404:
                raise

    async def _patch_status(self, name: str, namespace: str, patch: JsonDict) -> JsonDict:
        # A dict body on a core kind goes out as a strategic-merge patch: conditions merge by type.
        return await self._raw(self._core.patch_namespaced_pod_status(name, namespace, patch, _preload_content=False))

    @staticmethod
    async def _raw(call: Awaitable[Any]) -> JsonDict:
        """The object exactly as the server sent it (the typed models would re-render its timestamps)."""
        response = await call
        try:
            body: JsonDict = json.loads(await response.read())
        finally:
            response.release()
        return body
