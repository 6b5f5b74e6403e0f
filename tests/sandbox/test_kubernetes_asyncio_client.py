"""Contract: the operator's own client, kubernetes-asyncio, against both backends.

`load_kube_config` + `ApiClient` (plain HTTP with a token for the emulator, TLS for the real server),
CustomObjectsApi with merge-patch, list-then-watch with bookmarks and resume, 410 as `ApiException`, and the
`LeaseLock` used for leader election, including the MicroTime trap it falls into.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.api_client import ApiClient
from kubernetes_asyncio.client.rest import ApiException
from kubernetes_asyncio.leaderelection.leaderelectionrecord import LeaderElectionRecord
from kubernetes_asyncio.leaderelection.resourcelock.leaselock import LeaseLock

if TYPE_CHECKING:
    from conftest import Kube

GROUP, VERSION, PLURAL = "model.aibrix.ai", "v1alpha1", "modeladapters"
MERGE = "application/merge-patch+json"


@pytest.fixture
async def api(kube: Kube) -> AsyncIterator[ApiClient]:
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(kube.kubeconfig), client_configuration=configuration)
    async with ApiClient(configuration) as api_client:
        yield api_client


async def test_the_kubeconfig_loads_and_the_client_authenticates(kube: Kube, api: ApiClient) -> None:
    namespaces = await client.CoreV1Api(api).list_namespace()
    assert kube.namespace in [n.metadata.name for n in namespaces.items]
    assert "default" in [n.metadata.name for n in namespaces.items]


async def test_custom_objects_create_get_merge_patch_and_status(kube: Kube, api: ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    created = await custom.create_namespaced_custom_object(GROUP, VERSION, kube.namespace, PLURAL, kube.adapter("a"))
    assert created["metadata"]["generation"] == 1
    patched = await custom.patch_namespaced_custom_object(
        GROUP, VERSION, kube.namespace, PLURAL, "a", {"spec": {"replicas": 2}}, _content_type=MERGE
    )
    assert patched["spec"]["replicas"] == 2 and patched["metadata"]["generation"] == 2
    status = await custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        kube.namespace,
        PLURAL,
        "a",
        {"status": {"phase": "Pending", "observedGeneration": 2}},
        _content_type=MERGE,
    )
    assert status["status"] == {"phase": "Pending", "observedGeneration": 2}
    got = await custom.get_namespaced_custom_object(GROUP, VERSION, kube.namespace, PLURAL, "a")
    assert got["status"]["phase"] == "Pending"


async def test_a_dict_patch_without_a_content_type_goes_out_as_json_patch_and_is_refused(
    kube: Kube, api: ApiClient
) -> None:
    custom = client.CustomObjectsApi(api)
    await custom.create_namespaced_custom_object(GROUP, VERSION, kube.namespace, PLURAL, kube.adapter("a"))
    with pytest.raises(ApiException) as raised:
        await custom.patch_namespaced_custom_object(
            GROUP, VERSION, kube.namespace, PLURAL, "a", {"spec": {"replicas": 2}}
        )
    assert raised.value.status == 400


async def test_list_then_watch_with_bookmarks_resumes_where_the_list_ended(kube: Kube, api: ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    await custom.create_namespaced_custom_object(GROUP, VERSION, kube.namespace, PLURAL, kube.adapter("old"))
    listed = await custom.list_namespaced_custom_object(GROUP, VERSION, kube.namespace, PLURAL)
    assert listed["kind"] == "ModelAdapterList"
    version = listed["metadata"]["resourceVersion"]
    await custom.create_namespaced_custom_object(GROUP, VERSION, kube.namespace, PLURAL, kube.adapter("new"))
    seen: list[tuple[str, str]] = []
    async with watch.Watch() as stream:
        async for event in stream.stream(
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            kube.namespace,
            PLURAL,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=3,
        ):
            if event["type"] == "BOOKMARK":
                continue
            seen.append((event["type"], event["object"]["metadata"]["name"]))
            if event["type"] == "ADDED":
                await custom.delete_namespaced_custom_object(
                    GROUP, VERSION, kube.namespace, PLURAL, event["object"]["metadata"]["name"]
                )
            if len(seen) == 2:
                break
    assert seen == [("ADDED", "new"), ("DELETED", "new")]


async def test_a_watch_from_an_expired_resource_version_raises_410(kube: Kube, api: ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as raised:
        async with watch.Watch() as stream:
            async for _event in stream.stream(
                custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                kube.namespace,
                PLURAL,
                resource_version="1",
                timeout_seconds=5,
            ):
                pass
    assert raised.value.status == 410


async def test_pods_are_watched_as_typed_objects(kube: Kube, api: ApiClient) -> None:
    core = client.CoreV1Api(api)
    listed = await core.list_namespaced_pod(kube.namespace)
    await kube.create(kube.core("pods"), kube.pod("p", app="engine"))
    async with watch.Watch() as stream:
        async for event in stream.stream(
            core.list_namespaced_pod,
            kube.namespace,
            label_selector="app=engine",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=5,
        ):
            assert event["type"] == "ADDED"
            assert event["object"].metadata.name == "p"
            assert event["object"].status.phase == "Pending"
            break


def record(identity: str, renew: str) -> LeaderElectionRecord:
    return LeaderElectionRecord(identity, "15", "2026-11-26 10:00:00.000001", renew)


async def test_lease_lock_creates_reads_and_renews_the_lease(kube: Kube, api: ApiClient) -> None:
    lock = LeaseLock("modeladapter-operator", kube.namespace, "op-1", api)
    assert await lock.create("modeladapter-operator", kube.namespace, record("op-1", "2026-11-26 10:00:01.000002"))
    found, current = await lock.get("modeladapter-operator", kube.namespace)
    assert found and isinstance(current, LeaderElectionRecord) and current.holder_identity == "op-1"
    assert await lock.update("modeladapter-operator", kube.namespace, record("op-1", "2026-11-26 10:00:06.500000"))
    lease = await kube.get(kube.path("/apis/coordination.k8s.io/v1", "leases", "modeladapter-operator"))
    assert lease.body["spec"]["renewTime"] == "2026-11-26T10:00:06.500000Z"


async def test_lease_lock_renewal_with_a_stale_lease_is_refused(kube: Kube, api: ApiClient) -> None:
    lock = LeaseLock("modeladapter-operator", kube.namespace, "op-1", api)
    rival = LeaseLock("modeladapter-operator", kube.namespace, "op-2", api)
    await lock.create("modeladapter-operator", kube.namespace, record("op-1", "2026-11-26 10:00:01.000002"))
    await lock.get("modeladapter-operator", kube.namespace)
    await rival.get("modeladapter-operator", kube.namespace)
    assert await rival.update("modeladapter-operator", kube.namespace, record("op-2", "2026-11-26 10:00:02.000003"))
    assert not await lock.update(
        "modeladapter-operator", kube.namespace, record("op-1", "2026-11-26 10:00:03.000004")
    )  # 409 Conflict


async def test_a_renew_time_with_zero_microseconds_round_trips_into_a_400(kube: Kube, api: ApiClient) -> None:
    # The trap in DESIGN §6: read back into V1Lease, a whole-second renewTime is re-sent as `...+00:00`.
    coordination = client.CoordinationV1Api(api)
    body: dict[str, Any] = {
        "metadata": {"name": "l"},
        "spec": {"holderIdentity": "op-1", "renewTime": "2026-11-26T10:00:01.000000Z"},
    }
    await coordination.create_namespaced_lease(kube.namespace, body)
    lease = await coordination.read_namespaced_lease("l", kube.namespace)
    assert lease.spec.renew_time == datetime(2026, 11, 26, 10, 0, 1, tzinfo=UTC)
    with pytest.raises(ApiException) as raised:
        await coordination.replace_namespaced_lease("l", kube.namespace, lease)
    assert raised.value.status == 400
