"""What Envoy is told: a bootstrap with one listener, and xDS files that say where each model's requests go. Pure.

The wiring is AIBrix's (its model router makes one HTTPRoute per model matching the header `model`, its gateway
plugin copies the body's `model` into that header), done with plain Envoy:

* a Lua filter reads the JSON body's `model`, sets the `model` header and clears the route cache, so the route
  is chosen again on that header;
* one route per model, `prefix: /v1/` with `model: <name>` exactly, to a cluster of that model (EDS from a file);
  `GET /v1/models` is answered by Envoy itself with the models it can route; any other model gets 404, a request
  that names none 400, both OpenAI-style JSON errors;
* a cluster with no endpoint answers 503 (`no healthy upstream`), rewritten to the same JSON shape;
* a request that could not reach its endpoint (refused, reset before it was sent) is tried on another one, so a
  pod lost before its EndpointSlice says so costs no failed request.

Envoy watches the files it was pointed at (`path_config_source`): `write_atomically` renames a complete file over
the old one, which Envoy sees at once. The route configuration (RDS) and the cluster set (CDS) change when models
come and go; each cluster's endpoints (EDS) when its pods do.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

MODEL_HEADER: Final = "model"
UPSTREAM_HEADER: Final = "x-gateway-upstream"
"""Set on every routed answer: the endpoint (`IP:port`) that served it, so a user (and a test) sees where it went."""
ROUTE_CONFIG: Final = "models"
BODY_LIMIT_BYTES: Final = 32 * 1024 * 1024
OPENAI_PATHS: Final = ("/v1/completions", "/v1/chat/completions", "/v1/responses")
_TYPES: Final = "type.googleapis.com/envoy."

# The body's top-level "model": a scan that steps over strings (escapes included), nested objects and arrays,
# so a "model" key inside `metadata` or a message never routes. Envoy's Lua has no JSON parser. A header `model`
# the client sent is dropped on every request: only the body chooses the route.
LUA_COPY_MODEL: Final = r"""
local function top_level_model(text)
  local depth, i, n, last = 0, 1, #text, nil
  while i <= n do
    local c = text:sub(i, i)
    if c == '"' then
      local j = i + 1
      while j <= n do
        local d = text:sub(j, j)
        if d == "\\" then
          j = j + 2
        elseif d == '"' then
          break
        else
          j = j + 1
        end
      end
      if depth == 1 and (last == "{" or last == ",") and text:sub(i + 1, j - 1) == "model" then
        local value = string.match(text, '^%s*:%s*"([^"\\]*)"', j + 1)
        if value ~= nil then
          return value
        end
      end
      last = '"'
      i = j + 1
    else
      if c == "{" or c == "[" then
        depth = depth + 1
      elseif c == "}" or c == "]" then
        depth = depth - 1
      end
      if not c:match("%s") then
        last = c
      end
      i = i + 1
    end
  end
  return nil
end

function envoy_on_request(handle)
  handle:headers():remove("model")
  if handle:headers():get(":method") ~= "POST" then
    handle:clearRouteCache()
    return
  end
  local body = handle:body(true)
  -- body() waited for the whole body: headers taken before it are out of scope now
  local headers = handle:headers()
  local model = nil
  if body ~= nil and body:length() > 0 then
    model = top_level_model(body:getBytes(0, body:length()))
  end
  if model ~= nil then
    headers:replace("model", model)
  end
  handle:clearRouteCache()
end
"""


_RETRY_ELSEWHERE: Final = {
    # Only failures before the request reached an engine (a pod just lost, an endpoint not yet removed): a
    # completion is not idempotent, and one the engine started is never sent twice.
    "retry_on": "connect-failure,refused-stream,reset-before-request",
    "num_retries": 2,
    "retry_host_predicate": [
        {
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {"@type": _TYPES + "extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"},
        }
    ],
    "host_selection_retry_max_attempts": 3,
}


@dataclass(frozen=True, slots=True)
class Backend:
    """One model the gateway routes: its name (the request's `model`) and the ready endpoints serving it."""

    model: str
    endpoints: tuple[tuple[str, int], ...]
    """(address, port), sorted."""
    kind: str = "adapter"
    """`adapter` (a ModelAdapter's Service) or `base` (the base model's pods)."""

    @property
    def cluster(self) -> str:
        return f"{self.kind}/{self.model}"


@dataclass(frozen=True, slots=True)
class GatewayFiles:
    directory: Path

    @property
    def routes(self) -> Path:
        return self.directory / "rds.json"

    @property
    def clusters(self) -> Path:
        return self.directory / "cds.json"

    def endpoints(self, backend: Backend) -> Path:
        return self.directory / "eds" / f"{backend.kind}-{backend.model}.json"


def bootstrap(files: GatewayFiles, *, host: str, port: int, admin_port: int) -> dict[str, Any]:
    """Envoy's bootstrap: an admin port on loopback, the listener, and where to read routes and clusters."""
    return {
        "node": {"id": "modeladapter-sandbox-gateway", "cluster": "modeladapter-sandbox"},
        "admin": {"address": _socket("127.0.0.1", admin_port)},
        "dynamic_resources": {"cds_config": _file_source(files.clusters)},
        "static_resources": {"listeners": [_listener(files, host, port)]},
    }


def _listener(files: GatewayFiles, host: str, port: int) -> dict[str, Any]:
    manager = {
        "@type": _TYPES + "extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "gateway",
        "rds": {"route_config_name": ROUTE_CONFIG, "config_source": _file_source(files.routes)},
        "http_filters": [
            {
                "name": "envoy.filters.http.lua",
                "typed_config": {
                    "@type": _TYPES + "extensions.filters.http.lua.v3.Lua",
                    "default_source_code": {"inline_string": LUA_COPY_MODEL},
                },
            },
            {
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": _TYPES + "extensions.filters.http.router.v3.Router"},
            },
        ],
        "local_reply_config": {"mappers": [_no_endpoint_reply(), _unknown_model_reply()]},
    }
    return {
        "name": "gateway",
        "address": _socket(host, port),
        # The Lua filter holds the whole body to read its model: room for long prompts (Envoy's default is 1 MiB).
        "per_connection_buffer_limit_bytes": BODY_LIMIT_BYTES,
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}
        ],
    }


def _no_endpoint_reply() -> dict[str, Any]:
    """Envoy's own 503 (`no healthy upstream`: the model's cluster is empty) as an OpenAI-style error."""
    return {
        "filter": {
            "and_filter": {
                "filters": [
                    {
                        "status_code_filter": {
                            "comparison": {
                                "op": "EQ",
                                "value": {"default_value": 503, "runtime_key": "gateway.no_endpoint"},
                            }
                        }
                    },
                    {"response_flag_filter": {"flags": ["UH"]}},
                ]
            }
        },
        "body_format_override": {
            "json_format": {
                "error": {
                    "message": "The model `%REQ(model)%` has no ready endpoint: no pod serves it now.",
                    "type": "ServiceUnavailableError",
                    "code": "model_unavailable",
                }
            }
        },
    }


def _unknown_model_reply() -> dict[str, Any]:
    """The route table's 404 (no route for that `model`), naming the model as OpenAI's API does."""
    return {
        "filter": {
            "status_code_filter": {
                "comparison": {"op": "EQ", "value": {"default_value": 404, "runtime_key": "gateway.unknown_model"}}
            }
        },
        "body_format_override": {
            "json_format": {
                "error": {
                    "message": "The model `%REQ(model)%` does not exist: no ModelAdapter or base model of that name is routed here.",
                    "type": "NotFoundError",
                    "param": "model",
                    "code": "model_not_found",
                }
            }
        },
    }


def _error(status: int, message: str, kind: str, code: str) -> dict[str, Any]:
    body = {"error": {"message": message, "type": kind, "param": "model", "code": code}}
    return {"status": status, "body": {"inline_string": json.dumps(body)}}


def route_configuration(backends: Sequence[Backend]) -> dict[str, Any]:
    """One route per model on its `model` header; the models list; 404 for another model, 400 for none."""
    listed = {
        "object": "list",
        "data": [{"id": b.model, "object": "model", "owned_by": "modeladapter"} for b in backends],
    }
    routes: list[dict[str, Any]] = [
        {
            "name": "models",
            "match": {"path": "/v1/models", "headers": [{"name": ":method", "string_match": {"exact": "GET"}}]},
            "direct_response": {"status": 200, "body": {"inline_string": json.dumps(listed)}},
            "response_headers_to_add": [_header("content-type", "application/json")],
        }
    ]
    for backend in backends:
        routes.append(
            {
                "name": backend.cluster,
                "match": {
                    "prefix": "/v1/",
                    "headers": [{"name": MODEL_HEADER, "string_match": {"exact": backend.model}}],
                },
                "route": {"cluster": backend.cluster, "timeout": "0s", "retry_policy": _RETRY_ELSEWHERE},
                "response_headers_to_add": [_header(UPSTREAM_HEADER, "%UPSTREAM_HOST%")],
            }
        )
    json_headers = [_header("content-type", "application/json")]
    routes.append(
        {
            "name": "unknown-model",
            "match": {"prefix": "/", "headers": [{"name": MODEL_HEADER, "present_match": True}]},
            "direct_response": {"status": 404},  # the body names the model: `_unknown_model_reply`
        }
    )
    routes.append(
        {
            "name": "no-model",
            "match": {"prefix": "/"},
            "direct_response": _error(
                400,
                'The request names no model: send a JSON body with "model" (an adapter or base model name).',
                "BadRequestError",
                "model_missing",
            ),
            "response_headers_to_add": json_headers,
        }
    )
    config = {
        "@type": _TYPES + "config.route.v3.RouteConfiguration",
        "name": ROUTE_CONFIG,
        "virtual_hosts": [{"name": "models", "domains": ["*"], "routes": routes}],
    }
    return {"version_info": _version(config), "resources": [config]}


def cluster_set(files: GatewayFiles, backends: Sequence[Backend]) -> dict[str, Any]:
    clusters = [
        {
            "@type": _TYPES + "config.cluster.v3.Cluster",
            "name": backend.cluster,
            "type": "EDS",
            "connect_timeout": "1s",
            "eds_cluster_config": {
                "service_name": backend.cluster,
                "eds_config": _file_source(files.endpoints(backend)),
            },
        }
        for backend in backends
    ]
    return {"version_info": _version(clusters), "resources": clusters}


def load_assignment(backend: Backend) -> dict[str, Any]:
    assignment = {
        "@type": _TYPES + "config.endpoint.v3.ClusterLoadAssignment",
        "cluster_name": backend.cluster,
        "endpoints": [
            {"lb_endpoints": [{"endpoint": {"address": _socket(ip, port)}} for ip, port in backend.endpoints]}
        ],
    }
    return {"version_info": _version(assignment), "resources": [assignment]}


def files_for(
    files: GatewayFiles, backends: Sequence[Backend], *, before: Sequence[Backend] = ()
) -> dict[Path, dict[str, Any]]:
    """Every file Envoy reads for these backends, in the order they must be written so that no route ever names
    a cluster Envoy lacks: endpoints first, then the clusters that point at them, then the routes that name the
    clusters; but when a model of `before` is gone, its route goes before its cluster."""
    endpoints = {files.endpoints(backend): load_assignment(backend) for backend in backends}
    clusters = {files.clusters: cluster_set(files, backends)}
    routes = {files.routes: route_configuration(backends)}
    if {b.cluster for b in before} - {b.cluster for b in backends}:
        return {**routes, **endpoints, **clusters}
    return {**endpoints, **clusters, **routes}


def _header(key: str, value: str) -> dict[str, Any]:
    return {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}


def _socket(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _file_source(path: Path) -> dict[str, Any]:
    return {"path_config_source": {"path": str(path)}, "resource_api_version": "V3"}


def _version(content: object) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
