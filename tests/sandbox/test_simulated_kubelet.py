"""Contract: pods without a kubelet (`modeladapter.sandbox.pods.SimulatedKubelet`), on both backends.

Pods get loopback IPs from 127.0.0.2 upward, become Ready or not with a chosen lastTransitionTime, terminate
gracefully (deletionTimestamp set, pod kept) and are deleted for good.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from kubernetes_asyncio import config
from kubernetes_asyncio.client import Configuration
from kubernetes_asyncio.client.api_client import ApiClient

from modeladapter.sandbox.pods import SimulatedKubelet, next_free_ip

if TYPE_CHECKING:
    from conftest import Kube


@pytest.fixture
async def kubelet(kube: Kube) -> AsyncIterator[SimulatedKubelet]:
    configuration = Configuration()
    await config.load_kube_config(config_file=str(kube.kubeconfig), client_configuration=configuration)
    async with ApiClient(configuration) as api:
        yield SimulatedKubelet(api)


def conditions(pod: dict) -> dict[str, tuple[str, str]]:  # type: ignore[type-arg]
    return {c["type"]: (c["status"], c["lastTransitionTime"]) for c in pod["status"]["conditions"]}


def test_the_next_free_ip_is_the_lowest_unused_from_127_0_0_2() -> None:
    assert next_free_ip([]) == "127.0.0.2"
    assert next_free_ip(["127.0.0.2", "127.0.0.4"]) == "127.0.0.3"
    assert next_free_ip([f"127.0.0.{n}" for n in range(2, 255)]) == "127.0.1.0"


async def test_pods_get_loopback_ips_from_127_0_0_2_upward_and_run(kube: Kube, kubelet: SimulatedKubelet) -> None:
    used_elsewhere = await kubelet.used_ips()  # the real lane is shared by the session's tests
    first = await kubelet.create_pod("engine-0", kube.namespace, labels={"app": "vllm"})
    second = await kubelet.create_pod("engine-1", kube.namespace, labels={"app": "vllm"})
    assert first["status"]["podIP"] == next_free_ip(used_elsewhere)
    assert second["status"]["podIP"] == next_free_ip(used_elsewhere | {first["status"]["podIP"]})
    assert first["status"]["phase"] == "Running"
    assert first["spec"]["nodeName"] == "sandbox-node"
    assert conditions(first)["Ready"][0] == "True"
    listed = await kube.get(kube.core("pods"), params={"labelSelector": "app=vllm"})
    assert sorted(p["status"]["podIP"] for p in listed.body["items"]) == sorted(
        [first["status"]["podIP"], second["status"]["podIP"]]
    )


async def test_a_deleted_pods_ip_is_given_out_again(kube: Kube, kubelet: SimulatedKubelet) -> None:
    first = await kubelet.create_pod("engine-0", kube.namespace)
    await kubelet.delete("engine-0", kube.namespace)
    again = await kubelet.create_pod("engine-1", kube.namespace)
    assert again["status"]["podIP"] == first["status"]["podIP"]


async def test_ready_and_not_ready_with_a_chosen_transition_time(kube: Kube, kubelet: SimulatedKubelet) -> None:
    since = datetime(2026, 11, 26, 9, 30, 0, tzinfo=UTC)
    pod = await kubelet.create_pod("engine-0", kube.namespace, ready=False, since=since)
    assert conditions(pod)["Ready"] == ("False", "2026-11-26T09:30:00Z")
    ready = await kubelet.mark_ready("engine-0", kube.namespace, since=datetime(2026, 11, 26, 9, 31, 5, tzinfo=UTC))
    assert conditions(ready)["Ready"] == ("True", "2026-11-26T09:31:05Z")
    assert conditions(ready)["ContainersReady"] == ("True", "2026-11-26T09:31:05Z")
    assert conditions(ready)["PodScheduled"][0] == "True"
    assert all(s["ready"] for s in ready["status"]["containerStatuses"])
    not_ready = await kubelet.mark_not_ready("engine-0", kube.namespace)
    assert conditions(not_ready)["Ready"][0] == "False"
    assert not any(s["ready"] for s in not_ready["status"]["containerStatuses"])


async def test_a_terminating_pod_keeps_its_ip_until_it_is_deleted(kube: Kube, kubelet: SimulatedKubelet) -> None:
    pod = await kubelet.create_pod("engine-0", kube.namespace)
    terminating = await kubelet.terminate("engine-0", kube.namespace)
    assert terminating["metadata"]["deletionTimestamp"]
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 30
    still = await kube.get(kube.core("pods", "engine-0"))
    assert still.status == 200 and still.body["status"]["podIP"] == pod["status"]["podIP"]
    await kubelet.delete("engine-0", kube.namespace)
    assert (await kube.get(kube.core("pods", "engine-0"))).status == 404
    await kubelet.delete("engine-0", kube.namespace)  # deleting a pod that is gone is not an error
