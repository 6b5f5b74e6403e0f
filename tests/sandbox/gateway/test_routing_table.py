"""What the gateway routes, read from the objects a cluster's gateway reads (`sandbox/gateway/routing.py`)."""

from __future__ import annotations

from typing import Any

import pytest

from modeladapter.sandbox.gateway.envoy_config import Backend
from modeladapter.sandbox.gateway.routing import backends

Raw = dict[str, Any]


def service(
    name: str, *, namespace: str = "default", created: str = "2026-12-01T00:00:00Z", owner: str = "ModelAdapter"
) -> Raw:
    reference = {"apiVersion": "model.aibrix.ai/v1alpha1", "kind": owner, "name": name, "uid": "u", "controller": True}
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": created,
            "ownerReferences": [reference],
        },
        "spec": {"ports": [{"name": "http", "port": 8000}]},
    }


def endpoint_slice(service_name: str, *addresses: str, namespace: str = "default", port: int = 8000,
                   ready: bool | None = True) -> Raw:  # fmt: skip
    conditions = {} if ready is None else {"ready": ready}
    return {
        "metadata": {
            "name": service_name,
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service_name},
        },  # fmt: skip
        "endpoints": [{"addresses": [a], "conditions": conditions} for a in addresses],
        "ports": [{"name": "http", "port": port}],
    }


def pod(ip: str, *, model: str = "qwen", ready: bool = True, port: str | None = None, deleting: bool = False) -> Raw:
    labels = {"model.aibrix.ai/name": model, **({"model.aibrix.ai/port": port} if port else {})}
    metadata: Raw = {"name": f"pod-{ip}", "namespace": "default", "labels": labels}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    return {"metadata": metadata, "status": {"podIP": ip, "conditions": [condition]}}


def test_an_adapter_routes_to_the_ready_addresses_of_its_endpoint_slice() -> None:
    routed = backends([service("lora")], [endpoint_slice("lora", "10.0.0.2", "10.0.0.1")], [])
    assert routed == [Backend("lora", (("10.0.0.1", 8000), ("10.0.0.2", 8000)))]


@pytest.mark.parametrize(("ready", "routed"), [(True, 1), (None, 1), (False, 0)])
def test_an_endpoint_is_routed_unless_it_says_it_is_not_ready(ready: bool | None, routed: int) -> None:
    """Kubernetes: a missing `ready` condition means unknown, which consumers treat as ready."""
    (backend,) = backends([service("lora")], [endpoint_slice("lora", "10.0.0.1", ready=ready)], [])
    assert len(backend.endpoints) == routed


def test_an_adapter_without_endpoints_is_still_routed_so_it_answers_503_rather_than_404() -> None:
    assert backends([service("lora")], [], []) == [Backend("lora", ())]


def test_only_services_a_model_adapter_controls_are_routes() -> None:
    routed = backends([service("lora", owner="Deployment")], [endpoint_slice("lora", "10.0.0.1")], [])
    assert routed == []


def test_slices_of_another_namespace_or_service_are_not_mixed_in() -> None:
    slices = [endpoint_slice("lora", "10.0.0.1", namespace="other"), endpoint_slice("lora-2", "10.0.0.2")]
    assert backends([service("lora")], slices, []) == [Backend("lora", ())]


def test_the_slice_port_is_the_endpoint_port() -> None:
    (backend,) = backends([service("lora")], [endpoint_slice("lora", "10.0.0.1", port=9000)], [])
    assert backend.endpoints == (("10.0.0.1", 9000),)


def test_one_name_in_two_namespaces_routes_to_the_older_service() -> None:
    services = [service("lora", namespace="b", created="2026-12-01T00:00:00Z"),
                service("lora", namespace="a", created="2026-12-02T00:00:00Z")]  # fmt: skip
    slices = [endpoint_slice("lora", "10.0.0.1", namespace="a"), endpoint_slice("lora", "10.0.0.2", namespace="b")]
    assert backends(services, slices, []) == [Backend("lora", (("10.0.0.2", 8000),))]


def test_the_base_model_routes_to_its_ready_pods_that_are_not_terminating() -> None:
    pods = [pod("10.0.0.1"), pod("10.0.0.2", ready=False), pod("10.0.0.3", deleting=True), pod("10.0.0.4", port="9000")]
    assert backends([], [], pods) == [Backend("qwen", (("10.0.0.1", 8000), ("10.0.0.4", 9000)), kind="base")]


def test_an_adapter_named_like_the_base_model_wins() -> None:
    routed = backends([service("qwen")], [endpoint_slice("qwen", "10.0.0.9")], [pod("10.0.0.1")])
    assert routed == [Backend("qwen", (("10.0.0.9", 8000),))]
