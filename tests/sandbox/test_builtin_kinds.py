"""Contract: the built-in kinds the operator and the sandbox use, with the server's defaults and checks.

Services (clusterIP allocation and defaulting, immutability), pods (defaults, a status the tests write in
place of a kubelet), leases (MicroTime with exactly six fractional digits), events in both APIs (one storage),
secrets (stringData), and endpointslices (`discovery.k8s.io/v1`, which kube-apiserver v1.20 does not serve:
emulator only).
"""

from __future__ import annotations

import base64
import ipaddress
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Kube

LEASES = "/apis/coordination.k8s.io/v1"
EVENTS_V1 = "/apis/events.k8s.io/v1"


async def test_a_service_gets_a_cluster_ip_and_defaults(kube: Kube) -> None:
    created = await kube.create(
        kube.core("services"), {"metadata": {"name": "svc"}, "spec": {"ports": [{"name": "http", "port": 8000}]}}
    )
    spec = created["spec"]
    assert ipaddress.ip_address(spec["clusterIP"]) in ipaddress.ip_network("10.96.0.0/16")
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    assert (spec["type"], spec["sessionAffinity"]) == ("ClusterIP", "None")
    assert spec["ports"] == [{"name": "http", "protocol": "TCP", "port": 8000, "targetPort": 8000}]
    assert created["status"] == {"loadBalancer": {}}


async def test_two_services_get_different_cluster_ips(kube: Kube) -> None:
    ips = set()
    for name in ("one", "two"):
        created = await kube.create(
            kube.core("services"), {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}
        )
        ips.add(created["spec"]["clusterIP"])
    assert len(ips) == 2


async def test_a_headless_service_keeps_cluster_ip_none(kube: Kube) -> None:
    created = await kube.create(kube.core("services"), {"metadata": {"name": "h"}, "spec": {"clusterIP": "None"}})
    assert created["spec"]["clusterIP"] == "None"


async def test_the_cluster_ip_cannot_change(kube: Kube) -> None:
    await kube.create(kube.core("services"), {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}})
    patched = await kube.patch(kube.core("services", "svc"), {"spec": {"clusterIP": "10.96.200.200"}})
    assert (patched.status, patched.reason) == (422, "Invalid")
    assert patched.body["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "field": "spec.clusterIPs[0]",
            "message": 'Invalid value: []string{"10.96.200.200"}: may not change once set',
        }
    ]


async def test_a_service_without_ports_is_invalid(kube: Kube) -> None:
    created = await kube.post(kube.core("services"), {"metadata": {"name": "svc"}, "spec": {}})
    assert (created.status, created.reason) == (422, "Invalid")
    assert {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.ports"} in created.body[
        "details"
    ]["causes"]


async def test_a_pod_is_defaulted_like_the_api_server_does_without_a_kubelet(kube: Kube) -> None:
    created = await kube.create(kube.core("pods"), kube.pod("p"))
    spec, container = created["spec"], created["spec"]["containers"][0]
    assert created["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert (spec["restartPolicy"], spec["dnsPolicy"], spec["schedulerName"]) == (
        "Always",
        "ClusterFirst",
        "default-scheduler",
    )
    assert (spec["terminationGracePeriodSeconds"], spec["enableServiceLinks"], spec["priority"]) == (30, True, 0)
    assert {t["key"] for t in spec["tolerations"]} == {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}
    assert (container["imagePullPolicy"], container["terminationMessagePath"]) == (
        "IfNotPresent",
        "/dev/termination-log",
    )


async def test_a_pod_without_containers_is_invalid(kube: Kube) -> None:
    created = await kube.post(kube.core("pods"), {"metadata": {"name": "p"}, "spec": {"containers": []}})
    assert (created.status, created.reason) == (422, "Invalid")
    assert any(c["field"] == "spec.containers" for c in created.body["details"]["causes"])


async def test_a_pod_spec_is_immutable_apart_from_images(kube: Kube) -> None:
    await kube.create(kube.core("pods"), kube.pod("p"))
    image = await kube.patch(
        kube.core("pods", "p"), {"spec": {"containers": [{"name": "engine", "image": "v2"}]}}, kind="strategic"
    )
    assert image.status == 200
    other = await kube.patch(kube.core("pods", "p"), {"spec": {"restartPolicy": "Never"}}, kind="strategic")
    assert (other.status, other.reason) == (422, "Invalid")
    assert other.body["details"]["causes"][0]["field"] == "spec"


async def test_pod_status_takes_an_ip_and_a_ready_condition_with_a_chosen_transition_time(kube: Kube) -> None:
    await kube.create(kube.core("pods"), kube.pod("p"))
    status = {
        "phase": "Running",
        "podIP": "127.0.0.2",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-02T03:04:05Z"}],
    }
    patched = await kube.patch(kube.core("pods", "p", "status"), {"status": status}, kind="strategic")
    assert patched.status == 200, patched
    got = patched.body["status"]
    assert got["podIPs"] == [{"ip": "127.0.0.2"}]
    assert got["conditions"][0]["lastTransitionTime"] == "2026-01-02T03:04:05Z"
    by_ip = await kube.get(kube.core("pods"), params={"fieldSelector": "status.podIP=127.0.0.2"})
    assert [p["metadata"]["name"] for p in by_ip.body["items"]] == ["p"]


async def test_a_lease_keeps_micro_time_with_six_fractional_digits(kube: Kube) -> None:
    lease = {
        "metadata": {"name": "leader"},
        "spec": {
            "holderIdentity": "op-1",
            "leaseDurationSeconds": 15,
            "acquireTime": "2026-11-26T10:00:00.000000Z",
            "renewTime": "2026-11-26T10:00:01.123456Z",
        },
    }
    created = await kube.create(kube.path(LEASES, "leases"), lease)
    assert created["spec"]["renewTime"] == "2026-11-26T10:00:01.123456Z"
    assert created["spec"]["acquireTime"] == "2026-11-26T10:00:00.000000Z"


@pytest.mark.parametrize(
    "renew_time",
    [
        pytest.param("2026-11-26T10:00:01+00:00", id="no-fraction-with-offset"),
        pytest.param("2026-11-26T10:00:01Z", id="no-fraction"),
        pytest.param("2026-11-26T10:00:01.123Z", id="three-digits"),
        pytest.param("2026-11-26T10:00:01.1234567Z", id="seven-digits"),
    ],
)
async def test_micro_time_in_another_form_is_a_bad_request(kube: Kube, renew_time: str) -> None:
    lease = {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "op-1", "renewTime": renew_time}}
    created = await kube.post(kube.path(LEASES, "leases"), lease)
    assert (created.status, created.reason) == (400, "BadRequest"), created


async def test_micro_time_with_six_digits_and_a_numeric_offset_is_normalised_to_utc(kube: Kube) -> None:
    lease = {"metadata": {"name": "leader"}, "spec": {"renewTime": "2026-11-26T12:00:01.500000+02:00"}}
    created = await kube.create(kube.path(LEASES, "leases"), lease)
    assert created["spec"]["renewTime"] == "2026-11-26T10:00:01.500000Z"


async def test_a_lease_duration_must_be_positive(kube: Kube) -> None:
    lease = {"metadata": {"name": "leader"}, "spec": {"leaseDurationSeconds": 0}}
    created = await kube.post(kube.path(LEASES, "leases"), lease)
    assert (created.status, created.reason) == (422, "Invalid")
    assert created.body["details"]["causes"][0]["field"] == "spec.leaseDurationSeconds"


def core_event(kube: Kube, name: str, involved: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "involvedObject": involved,
        "reason": "Loaded",
        "message": "loaded on p",
        "type": "Normal",
        "source": {"component": "modeladapter"},
        "count": 1,
        "firstTimestamp": "2026-11-26T10:00:00Z",
        "lastTimestamp": "2026-11-26T10:00:00Z",
    }


async def test_core_events_are_served_by_events_k8s_io_too(kube: Kube) -> None:
    owner = await kube.create(kube.ma(), kube.adapter("a"))
    involved = {
        "apiVersion": "model.aibrix.ai/v1alpha1",
        "kind": "ModelAdapter",
        "name": "a",
        "namespace": kube.namespace,
        "uid": owner["metadata"]["uid"],
    }
    await kube.create(kube.core("events"), core_event(kube, "a.1", involved))
    served = await kube.get(kube.path(EVENTS_V1, "events", "a.1"))
    assert served.status == 200
    assert (served.body["apiVersion"], served.body["note"], served.body["regarding"]["name"]) == (
        "events.k8s.io/v1",
        "loaded on p",
        "a",
    )
    assert served.body["deprecatedCount"] == 1
    found = await kube.get(
        kube.core("events"),
        params={"fieldSelector": f"involvedObject.name=a,involvedObject.uid={owner['metadata']['uid']}"},
    )
    assert [e["metadata"]["name"] for e in found.body["items"]] == ["a.1"]


async def test_an_events_k8s_io_event_needs_event_time_and_reporting_fields(kube: Kube) -> None:
    event = {
        "metadata": {"name": "e"},
        "reason": "Loaded",
        "type": "Normal",
        "note": "n",
        "regarding": {"kind": "Pod", "name": "p", "namespace": kube.namespace},
    }
    without_time = await kube.post(kube.path(EVENTS_V1, "events"), event)
    assert (without_time.status, without_time.reason) == (422, "Invalid")
    assert [c["field"] for c in without_time.body["details"]["causes"]] == ["eventTime"]
    event["eventTime"] = "2026-11-26T10:00:00.000001Z"
    without_reporter = await kube.post(kube.path(EVENTS_V1, "events"), event)
    assert (without_reporter.status, without_reporter.reason) == (422, "Invalid")
    fields = [c["field"] for c in without_reporter.body["details"]["causes"]]
    assert fields == ["reportingController"] * 3 + ["reportingInstance", "action"]


async def test_an_events_k8s_io_event_is_readable_as_a_core_event(kube: Kube) -> None:
    event = {
        "metadata": {"name": "e"},
        "eventTime": "2026-11-26T10:00:00.000001Z",
        "reason": "Loaded",
        "type": "Normal",
        "note": "loaded",
        "action": "Load",
        "reportingController": "modeladapter.dev/operator",
        "reportingInstance": "op-1",
        "regarding": {"kind": "Pod", "name": "p", "namespace": kube.namespace},
    }
    created = await kube.create(kube.path(EVENTS_V1, "events"), event)
    assert created["eventTime"] == "2026-11-26T10:00:00.000001Z"
    core = await kube.get(kube.core("events", "e"))
    assert (core.body["message"], core.body["involvedObject"]["name"], core.body["reportingComponent"]) == (
        "loaded",
        "p",
        "modeladapter.dev/operator",
    )


async def test_a_core_event_about_another_namespace_is_invalid(kube: Kube) -> None:
    created = await kube.post(
        kube.core("events"), core_event(kube, "e", {"kind": "Pod", "name": "p", "namespace": "elsewhere"})
    )
    assert (created.status, created.reason) == (422, "Invalid")
    assert created.body["details"]["causes"][0]["field"] == "involvedObject.namespace"


async def test_secret_string_data_is_stored_as_base64_data(kube: Kube) -> None:
    created = await kube.create(kube.core("secrets"), {"metadata": {"name": "s"}, "stringData": {"api-key": "sk-123"}})
    assert created["data"] == {"api-key": base64.b64encode(b"sk-123").decode()}
    assert "stringData" not in created and created["type"] == "Opaque"


async def test_secret_data_that_is_not_base64_is_a_bad_request(kube: Kube) -> None:
    created = await kube.post(kube.core("secrets"), {"metadata": {"name": "s"}, "data": {"k": "not base64!"}})
    assert (created.status, created.reason) == (400, "BadRequest")


@pytest.mark.emulator_only
async def test_an_endpointslice_lists_the_instances_of_an_adapter(kube: Kube) -> None:
    slices = "/apis/discovery.k8s.io/v1"
    body = {
        "metadata": {"name": "a", "labels": {"kubernetes.io/service-name": "a"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8000}],
        "endpoints": [{"addresses": ["127.0.0.2"], "conditions": {"ready": True}}],
    }
    created = await kube.create(kube.path(slices, "endpointslices"), body)
    assert created["metadata"]["generation"] == 1
    assert created["ports"] == [{"name": "http", "port": 8000, "protocol": "TCP"}]
    listed = await kube.get(
        kube.path(slices, "endpointslices"), params={"labelSelector": "kubernetes.io/service-name=a"}
    )
    assert [s["metadata"]["name"] for s in listed.body["items"]] == ["a"]
    moved = await kube.patch(kube.path(slices, "endpointslices", "a"), {"endpoints": [{"addresses": ["127.0.0.3"]}]})
    assert moved.body["metadata"]["generation"] == 2


@pytest.mark.emulator_only
async def test_an_endpointslice_needs_an_address_type_and_valid_addresses(kube: Kube) -> None:
    slices = kube.path("/apis/discovery.k8s.io/v1", "endpointslices")
    missing = await kube.post(slices, {"metadata": {"name": "a"}, "endpoints": []})
    assert (missing.status, missing.reason) == (422, "Invalid")
    bad = await kube.post(
        slices, {"metadata": {"name": "b"}, "addressType": "IPv4", "endpoints": [{"addresses": ["not-an-ip"]}]}
    )
    assert (bad.status, bad.reason) == (422, "Invalid")
