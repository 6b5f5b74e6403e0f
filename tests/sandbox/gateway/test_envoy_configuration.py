"""What Envoy is told (`sandbox/gateway/envoy_config.py`): one route per model on its header, the order the files
are written in so that no route ever names a cluster Envoy lacks, and answers of the gateway's own."""

from __future__ import annotations

import json
from pathlib import Path

from modeladapter.sandbox.gateway.envoy_config import (
    BODY_LIMIT_BYTES,
    Backend,
    GatewayFiles,
    bootstrap,
    files_for,
    route_configuration,
)

FILES = GatewayFiles(Path("/gw"))
A = Backend("lora-a", (("10.0.0.1", 8000),))
B = Backend("lora-b", ())


def routes(backends: list[Backend]) -> list[dict[str, object]]:
    (config,) = route_configuration(backends)["resources"]
    return list(config["virtual_hosts"][0]["routes"])


def test_each_model_is_one_route_on_its_header_to_its_own_cluster() -> None:
    by_name = {r["name"]: r for r in routes([A, B])}
    assert by_name["adapter/lora-a"]["match"]["headers"] == [{"name": "model", "string_match": {"exact": "lora-a"}}]
    assert by_name["adapter/lora-a"]["route"]["cluster"] == "adapter/lora-a"


def test_the_model_list_is_answered_by_the_gateway_with_what_it_routes() -> None:
    (listing,) = [r for r in routes([A, B]) if r["name"] == "models"]
    assert [m["id"] for m in json.loads(listing["direct_response"]["body"]["inline_string"])["data"]] == [
        "lora-a",
        "lora-b",
    ]


def test_an_unknown_model_and_a_missing_one_come_last_so_no_model_route_is_shadowed() -> None:
    assert [r["name"] for r in routes([A])][-2:] == ["unknown-model", "no-model"]


def test_a_new_model_gets_its_endpoints_and_cluster_before_the_route_that_names_it() -> None:
    order = list(files_for(FILES, [A, B], before=[A]))
    assert order.index(FILES.endpoints(B)) < order.index(FILES.clusters) < order.index(FILES.routes)


def test_a_model_that_goes_loses_its_route_before_its_cluster() -> None:
    order = list(files_for(FILES, [A], before=[A, B]))
    assert order.index(FILES.routes) < order.index(FILES.clusters)


def test_the_listener_holds_long_bodies_and_the_admin_port_is_loopback_only() -> None:
    config = bootstrap(FILES, host="127.0.0.1", port=8888, admin_port=0)
    (listener,) = config["static_resources"]["listeners"]
    assert listener["per_connection_buffer_limit_bytes"] == BODY_LIMIT_BYTES >= 32 * 1024 * 1024
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
