"""The Gateway API's HTTPRoute CRD (`gateway.networking.k8s.io`), for an emulator that must hold HTTPRoutes.

The upstream CRD's schema is thousands of lines; this one keeps its names, scope, versions (v1 stored, v1beta1
served) and the fields the operator writes, and lets the rest through unchecked, as the emulator needs nothing
more to store, list and watch them. Seed it with `ApiServer.seed(http_route_crd())`.
"""

from __future__ import annotations

from typing import Any


def http_route_crd() -> dict[str, Any]:
    schema = {
        "openAPIV3Schema": {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "parentRefs": {
                            "type": "array",
                            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                        "hostnames": {"type": "array", "items": {"type": "string"}},
                        "rules": {
                            "type": "array",
                            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    },
                },
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "httproutes.gateway.networking.k8s.io"},
        "spec": {
            "group": "gateway.networking.k8s.io",
            "names": {
                "plural": "httproutes",
                "singular": "httproute",
                "kind": "HTTPRoute",
                "listKind": "HTTPRouteList",
            },
            "scope": "Namespaced",
            "versions": [
                {"name": "v1", "served": True, "storage": True, "schema": schema, "subresources": {"status": {}}},
                {"name": "v1beta1", "served": True, "storage": False, "schema": schema, "subresources": {"status": {}}},
            ],
        },
    }
