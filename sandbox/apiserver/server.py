"""The HTTP edge of the emulator: an aiohttp application that speaks kube-apiserver's REST dialect.

It parses paths (`/api/v1/namespaces/NS/pods/NAME/status`, `/apis/GROUP/VERSION/...`), query parameters,
content types and the `Accept` header (plain JSON, YAML, or a `meta.k8s.io` Table for kubectl), reads bodies
with the real server's 3 MiB limit, calls the pure `Store`, and renders results or `Status` errors. Watches are
chunked streams of newline-delimited JSON events fed from a per-stream queue, with bookmarks, `timeoutSeconds`,
and 410 Expired sent in the stream.

`ApiServer` is the in-process API the tests and the sandbox use:

    async with ApiServer() as server:
        server.write_kubeconfig(path)      # for kubectl and kubernetes-asyncio
        server.seed(manifest)              # put an object in directly
        server.objects("v1", "Pod", "default")
        server.cut_watches()               # end every open watch stream now (chaos tests)
        server.compact()                   # forget history: older resourceVersions get 410 Expired
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from modeladapter.sandbox.apiserver import discovery, errors, openapi
from modeladapter.sandbox.apiserver.errors import ApiError
from modeladapter.sandbox.apiserver.patches import APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH
from modeladapter.sandbox.apiserver.resources import ResourceType
from modeladapter.sandbox.apiserver.selectors import parse_field_selector, parse_label_selector
from modeladapter.sandbox.apiserver.store import DeleteOptions, Store, Watcher, parse_resource_version
from modeladapter.sandbox.apiserver.tables import table

JsonDict = dict[str, Any]
log = logging.getLogger(__name__)

MAX_BODY_BYTES = 3 * 1024 * 1024  # kube-apiserver's --max-request-body-bytes default
BODY_TYPES = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]


@dataclass(frozen=True)
class Target:
    """What a resource URL names."""

    resource: ResourceType
    namespace: str | None  # None: all namespaces (collection) or cluster-scoped
    name: str = ""
    subresource: str = ""


@dataclass(frozen=True)
class Rendering:
    """How the client wants objects back."""

    media_type: str  # application/json or application/yaml
    table_version: str = ""  # v1 / v1beta1 when a meta.k8s.io Table was asked for


def _media_params(part: str) -> tuple[str, dict[str, str]]:
    pieces = [p.strip() for p in part.split(";")]
    params = {}
    for piece in pieces[1:]:
        key, _, value = piece.partition("=")
        params[key.strip()] = value.strip()
    return pieces[0].lower(), params


def negotiate(accept: str | None) -> Rendering:
    if not accept:
        return Rendering("application/json")
    for part in accept.split(","):
        media, params = _media_params(part)
        if media not in ("application/json", "application/yaml", "*/*", "application/*"):
            continue
        wanted = params.get("as")
        if wanted == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
            return Rendering("application/json", params["v"])
        if wanted:
            continue
        return Rendering("application/yaml" if media == "application/yaml" else "application/json")
    raise ApiError(
        406,
        "NotAcceptable",
        "only the following media types are accepted: "
        "application/json, application/yaml, application/vnd.kubernetes.protobuf",
        {},
    )


def _bool(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


class ApiServer:
    """A faithful kube-apiserver emulator served on one loopback port, started and stopped inside the loop."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        store: Store | None = None,
        bookmark_interval: float = 60.0,
        controller_delay: float = 0.02,
        history_limit: int = 1000,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token if token is not None else secrets.token_urlsafe(24)
        self.store = store or Store(history_limit=history_limit)
        self.bookmark_interval = bookmark_interval
        self.controller_delay = controller_delay
        self._runner: web.AppRunner | None = None
        self._streams: set[_WatchStream] = set()
        self._controllers: asyncio.Task[None] | None = None
        self._dirty = asyncio.Event()
        self.encoded: dict[tuple[int, str, Rendering], tuple[JsonDict, bytes]] = {}
        self.store.on_change = self._dirty.set

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def start(self) -> ApiServer:
        app = web.Application(client_max_size=MAX_BODY_BYTES * 4, middlewares=[self._middleware])
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        addresses = [a for a in self._runner.addresses if isinstance(a, tuple)]
        self.port = int(addresses[0][1])
        self._controllers = asyncio.create_task(self._run_controllers(), name="apiserver-controllers")
        return self

    async def stop(self) -> None:
        self.cut_watches()
        if self._controllers is not None:
            self._controllers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._controllers
            self._controllers = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ApiServer:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def kubeconfig(self, *, namespace: str = "default", name: str = "modeladapter-sandbox") -> JsonDict:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": self.url}}],
            "users": [{"name": name, "user": {"token": self.token}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}],
            "current-context": name,
            "preferences": {},
        }

    def write_kubeconfig(self, path: str | Path, *, namespace: str = "default") -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(self.kubeconfig(namespace=namespace), sort_keys=False))
        target.chmod(0o600)
        return target

    # --- hooks for tests and the sandbox --------------------------------------------------------------------------

    def cut_watches(self, *, abort: bool = False) -> int:
        """End every open watch stream now: cleanly (as a server timeout does) or by dropping the connection."""
        streams = list(self._streams)
        for stream in streams:
            stream.cut(abort=abort)
        return len(streams)

    @property
    def open_watches(self) -> int:
        return len(self._streams)

    def compact(self) -> None:
        self.store.compact()

    def seed(self, obj: JsonDict) -> JsonDict:
        """Create an object directly (no HTTP), with every rule a POST would apply; returns the stored object."""
        resource = self.store.type_for(obj)
        namespace = (obj.get("metadata") or {}).get("namespace", "default") if resource.namespaced else ""
        return self.store.create(resource, namespace, obj)

    def objects(self, api_version: str, kind: str, namespace: str | None = None) -> list[JsonDict]:
        return self.store.objects(api_version, kind, namespace)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> JsonDict | None:
        resource = self.store.find_type(api_version, kind)
        if resource is None:
            return None
        try:
            return self.store.get(resource, namespace, name)
        except ApiError:
            return None

    async def settle(self) -> None:
        """Run the background controllers until nothing changes (garbage collection, namespace cleanup)."""
        for _ in range(100):
            if not self.store.run_controllers():
                return
            await asyncio.sleep(0)

    async def _run_controllers(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.controller_delay)
            self._dirty.clear()
            for _ in range(50):
                try:
                    if not self.store.run_controllers():
                        break
                except Exception:  # a controller bug must not stop the server; the next write retries
                    log.exception("background controllers failed")
                    break
            self._dirty.clear()

    # --- HTTP -----------------------------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            # A wrong token is 401, as on a real server. A request without credentials is served, as the old
            # plain-HTTP "insecure port" served it: kubectl never sends a bearer token over plain HTTP.
            # (A real secure port with AlwaysAllow answers it with 401.)
            sent = request.headers.get("Authorization")
            if sent is not None and sent != f"Bearer {self.token}":
                raise errors.unauthorized()
            return await handler(request)
        except ApiError as error:
            return self._status(error)
        except errors.PageNotFound:
            return web.Response(status=404, text="404 page not found\n")
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as error:  # never crash: report the bug as the real server reports a panic
            log.exception("unexpected error serving %s %s", request.method, request.path)
            return self._status(errors.internal(f"{type(error).__name__}: {error}"))

    @staticmethod
    def _status(error: ApiError) -> web.Response:
        return web.json_response(error.status(), status=error.code)

    @staticmethod
    def _respond(body: Any, rendering: Rendering, status: int = 200) -> web.Response:
        if rendering.media_type == "application/yaml":
            return web.Response(
                text=yaml.safe_dump(body, sort_keys=False), status=status, content_type="application/yaml"
            )
        return web.Response(
            text=json.dumps(body, separators=(",", ":")), status=status, content_type="application/json"
        )

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        segments = [s for s in path.split("/") if s]
        method = request.method
        if method == "GET" and path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if method == "GET" and path == "/version":
            return web.json_response(discovery.version_info())
        if method == "GET" and path in ("/openapi/v2", "/swagger-2.0.0.pb-v1"):
            described = openapi.document(self.store.resource_types(), discovery.GIT_VERSION)
            if "protobuf" in request.headers.get("Accept", "") or path.endswith("pb-v1"):
                return web.Response(body=openapi.encode_document(described), content_type="application/octet-stream")
            return web.json_response(described)
        types = self.store.resource_types()
        if not segments or segments[0] not in ("api", "apis"):
            raise errors.PageNotFound()
        if segments == ["api"]:
            return web.json_response(discovery.core_versions(f"{self.host}:{self.port}"))
        if segments == ["apis"]:
            return web.json_response(discovery.group_list(types))
        if segments[0] == "apis" and len(segments) == 2:
            found = discovery.group(types, segments[1])
            if found is None:
                raise errors.PageNotFound()
            return web.json_response(found)
        if segments[0] == "api":
            group, version, rest = "", segments[1], segments[2:]
        else:
            group, version, rest = segments[1], segments[2], segments[3:]
        listing = discovery.resource_list(types, group, version)
        if listing is None:
            raise errors.PageNotFound()
        if not rest:
            return web.json_response(listing)
        target = self._target(group, version, rest)
        return await self._serve(request, target)

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        try:
            return self._find_target(group, version, rest)
        except ApiError:
            served = [t for t in self.store.resource_types() if t.group == group and t.version == version]
            if served and not any(t.builtin for t in served):
                raise errors.PageNotFound() from None  # the CRD handler's fallthrough
            raise

    def _find_target(self, group: str, version: str, rest: list[str]) -> Target:
        lookup = self.store.resource_type
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespaced = lookup(group, version, rest[2])
            if namespaced is not None and namespaced.namespaced and len(rest) <= 5:
                return Target(namespaced, rest[1], rest[3] if len(rest) > 3 else "", rest[4] if len(rest) > 4 else "")
        resource = lookup(group, version, rest[0])
        if resource is None or len(rest) > 3:
            raise errors.unknown_resource()
        if resource.namespaced and len(rest) > 1:
            raise errors.unknown_resource()
        return Target(resource, None, rest[1] if len(rest) > 1 else "", rest[2] if len(rest) > 2 else "")

    async def _read_body(self, request: web.Request) -> bytes:
        chunks, size = [], 0
        async for chunk in request.content.iter_chunked(65536):
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise errors.too_large(f"limit is {MAX_BODY_BYTES}")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _decode_body(self, request: web.Request, *, allowed: list[str], resource: ResourceType) -> Any:
        media, _ = _media_params(request.headers.get("Content-Type", "application/json"))
        raw = await self._read_body(request)
        if media not in allowed:
            raise errors.unsupported_media_type(media, allowed)
        if media in ("application/yaml", APPLY_PATCH):
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as error:
                raise errors.bad_request(f"error converting YAML to JSON: {error}") from None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as error:
            shown = raw[:100].decode(errors="replace") or "<empty>"
            if media == MERGE_PATCH:  # v1.20 reports the merge-patch library's error as a bare 500
                raise ApiError(500, "", "Invalid JSON Patch", {}) from None
            if media in (JSON_PATCH, STRATEGIC_MERGE_PATCH):
                raise errors.bad_request(f"unexpected end of JSON input: {error}") from None
            raise errors.bad_request(
                f"the object provided is unrecognized (must be of type {resource.kind}): couldn't get "
                f"version/kind; json parse error: {error} ({shown})"
            ) from None

    async def _serve(self, request: web.Request, target: Target) -> web.StreamResponse:
        resource, store = target.resource, self.store
        query = dict(request.query)
        method = request.method
        namespace = target.namespace or ""
        dry_run = bool(request.query.getall("dryRun", []))
        if target.subresource and target.subresource not in ("status", *resource.extra_subresources):
            raise errors.unknown_resource()
        if target.subresource == "status" and not resource.status_subresource:
            raise errors.unknown_resource()
        if not target.name:
            rendering = negotiate(request.headers.get("Accept"))
            if method == "GET":
                if _bool(query.get("watch")):
                    return await self._watch(request, target, rendering)
                return self._list(target, query, rendering)
            if method == "POST":
                if store.crd_terminating(resource):
                    raise errors.method_not_allowed()
                body = await self._decode_body(request, allowed=BODY_TYPES[:2], resource=resource)
                if not resource.namespaced or target.namespace is not None:
                    new_obj = store.create(resource, namespace, body, dry_run=dry_run)
                    return self._respond(self._render_one(resource, new_obj, rendering), rendering, 201)
                raise errors.method_not_allowed()
            if method == "DELETE":
                return await self._delete_collection(request, target, query, rendering)
            raise errors.method_not_allowed()
        rendering = negotiate(request.headers.get("Accept"))
        if method == "POST" and not resource.builtin and not target.subresource:
            # the custom resource handler treats a POST to an object URL as a create in the collection
            return await self._serve(request, Target(resource, target.namespace))
        if method == "GET":
            if target.subresource not in ("", "status"):
                raise errors.method_not_allowed()
            obj = store.get(resource, namespace, target.name)
            return self._respond(self._render_one(resource, obj, rendering), rendering)
        if method == "PUT":
            body = await self._decode_body(request, allowed=BODY_TYPES[:2], resource=resource)
            if target.subresource == "finalize":
                obj, created = self._finalize_namespace(target, body)
            else:
                obj, created = store.update(
                    resource, namespace, target.name, body, subresource=target.subresource, dry_run=dry_run
                )
            return self._respond(self._render_one(resource, obj, rendering), rendering, 201 if created else 200)
        if method == "PATCH":
            media, _ = _media_params(request.headers.get("Content-Type", ""))
            allowed = [JSON_PATCH, MERGE_PATCH] + ([STRATEGIC_MERGE_PATCH] if resource.builtin else []) + [APPLY_PATCH]
            if media not in allowed:
                await self._read_body(request)
                raise errors.unsupported_media_type(media, allowed)
            patch = await self._decode_body(request, allowed=allowed, resource=resource)
            obj = store.patch(
                resource, namespace, target.name, media, patch, subresource=target.subresource, dry_run=dry_run
            )
            return self._respond(self._render_one(resource, obj, rendering), rendering)
        if method == "DELETE":
            if target.subresource:
                raise errors.method_not_allowed()
            options = await self._delete_options(request, query)
            obj, deleted = store.delete(resource, namespace, target.name, options, dry_run=dry_run)
            if deleted and resource.delete_returns_status:
                return self._respond(self._success_status(resource, obj), rendering)
            return self._respond(self._render_one(resource, obj, rendering), rendering)
        raise errors.method_not_allowed()

    @staticmethod
    def _success_status(resource: ResourceType, obj: JsonDict) -> JsonDict:
        details: JsonDict = {
            "name": obj["metadata"]["name"],
            "kind": resource.plural,
            "uid": obj["metadata"].get("uid"),
        }
        if resource.group:
            details["group"] = resource.group
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}

    def _finalize_namespace(self, target: Target, body: Any) -> tuple[JsonDict, bool]:
        current = self.store.get(target.resource, "", target.name)
        if not isinstance(body, dict):
            raise errors.bad_request("the body must be a Namespace")
        finalizers = (body.get("spec") or {}).get("finalizers") or []
        updated = dict(current)
        updated["spec"] = {**(current.get("spec") or {}), "finalizers": finalizers}
        return self.store.update(target.resource, "", target.name, updated)

    def _render_one(self, resource: ResourceType, obj: JsonDict, rendering: Rendering) -> JsonDict:
        if rendering.table_version and obj.get("kind") == resource.kind:
            return table(
                resource,
                [obj],
                list_metadata={"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                table_version=rendering.table_version,
                include_object="Metadata",
            )
        return obj

    def _selectors(self, target: Target, query: dict[str, str]) -> tuple[Any, Any]:
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"), target.resource.field_labels)
        return labels, fields

    def _list(self, target: Target, query: dict[str, str], rendering: Rendering) -> web.Response:
        labels, fields = self._selectors(target, query)
        try:
            limit = int(query.get("limit") or 0)
        except ValueError:
            raise errors.bad_request(f"invalid limit: {query.get('limit')!r}") from None
        if query.get("resourceVersion"):
            parse_resource_version(query["resourceVersion"])
        namespace = target.namespace if target.resource.namespaced else None
        page = self.store.list_objects(
            target.resource, namespace, labels, fields, limit=limit, continue_token=query.get("continue", "")
        )
        metadata: JsonDict = {"resourceVersion": str(page.resource_version)}
        if page.continue_token:
            metadata["continue"] = page.continue_token
        if page.remaining is not None:
            metadata["remainingItemCount"] = page.remaining
        if rendering.table_version:
            body = table(
                target.resource,
                page.items,
                list_metadata=metadata,
                table_version=rendering.table_version,
                include_object=query.get("includeObject", "Metadata"),
            )
        else:
            body = {
                "kind": f"{target.resource.kind}List",
                "apiVersion": target.resource.api_version,
                "metadata": metadata,
                "items": page.items,
            }
        return self._respond(body, rendering)

    async def _delete_options(self, request: web.Request, query: dict[str, str]) -> DeleteOptions:
        """DeleteOptions from the body (optional JSON) and the query string."""
        raw = await self._read_body(request)
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as error:
            raise errors.bad_request(f"json parse error: {error}") from None
        return DeleteOptions.parse(body, query)

    async def _delete_collection(
        self, request: web.Request, target: Target, query: dict[str, str], rendering: Rendering
    ) -> web.Response:
        labels, fields = self._selectors(target, query)
        options = await self._delete_options(request, query)
        namespace = target.namespace if target.resource.namespaced else None
        page = self.store.list_objects(target.resource, namespace, labels, fields)
        deleted = []
        for obj in page.items:
            meta = obj["metadata"]
            with contextlib.suppress(ApiError):
                deleted.append(self.store.delete(target.resource, meta.get("namespace", ""), meta["name"], options)[0])
        return self._respond(
            {
                "kind": f"{target.resource.kind}List",
                "apiVersion": target.resource.api_version,
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": deleted,
            },
            rendering,
        )

    async def _watch(self, request: web.Request, target: Target, rendering: Rendering) -> web.StreamResponse:
        query = request.query
        labels, fields = self._selectors(target, dict(query))
        try:
            timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        except ValueError:
            raise errors.bad_request(f"invalid timeoutSeconds: {query.get('timeoutSeconds')!r}") from None
        namespace = target.namespace if target.resource.namespaced else None
        stream = _WatchStream(self, target.resource, rendering, bookmarks=_bool(query.get("allowWatchBookmarks")))
        watcher = Watcher(target.resource, namespace, labels, fields, stream.deliver, stream.closed)
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        try:
            initial = self.store.watch(watcher, query.get("resourceVersion"))
        except ApiError as error:
            if error.code != 410:
                raise
            await response.prepare(request)
            await response.write(_event_line("ERROR", error.status()))
            await response.write_eof()
            return response
        self._streams.add(stream)
        try:
            await response.prepare(request)
            for event_type, obj in initial:
                await response.write(stream.encode(event_type, obj))
            await stream.run(response, request, timeout)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await response.write_eof()
        except ConnectionError:
            pass  # the watcher went away; a cancellation (shutdown, or aiohttp after a lost client) propagates
        finally:
            self.store.unwatch(watcher)
            self._streams.discard(stream)
        return response


def _event_line(event_type: str, obj: JsonDict) -> bytes:
    return (json.dumps({"type": event_type, "object": obj}, separators=(",", ":")) + "\n").encode()


_CLOSE: tuple[str, JsonDict] = ("", {})


class _WatchStream:
    """One open watch: a queue the store fills synchronously, drained into the HTTP response."""

    def __init__(self, server: ApiServer, resource: ResourceType, rendering: Rendering, *, bookmarks: bool) -> None:
        self.server = server
        self.resource = resource
        self.rendering = rendering
        self.bookmarks = bookmarks
        self.queue: asyncio.Queue[tuple[str, JsonDict]] = asyncio.Queue()
        self._abort = False
        self._request: web.Request | None = None

    def deliver(self, event_type: str, obj: JsonDict) -> None:
        self.queue.put_nowait((event_type, obj))

    def closed(self) -> None:
        self.queue.put_nowait(_CLOSE)

    def cut(self, *, abort: bool) -> None:
        self._abort = abort
        self.queue.put_nowait(_CLOSE)

    def encode(self, event_type: str, obj: JsonDict) -> bytes:
        # Watchers of one change share its object; encode it once per rendering. The cache holds the object
        # itself, so its id cannot be reused while the entry lives.
        key = (id(obj), event_type, self.rendering)
        cached = self.server.encoded.get(key)
        if cached is not None and cached[0] is obj:
            return cached[1]
        line = self._encode(event_type, obj)
        self.server.encoded[key] = (obj, line)
        while len(self.server.encoded) > 512:
            self.server.encoded.pop(next(iter(self.server.encoded)))
        return line

    def _encode(self, event_type: str, obj: JsonDict) -> bytes:
        if self.rendering.table_version and event_type in ("ADDED", "MODIFIED", "DELETED"):
            obj = table(
                self.resource,
                [obj],
                list_metadata={"resourceVersion": obj["metadata"]["resourceVersion"]},
                table_version=self.rendering.table_version,
                include_object="Metadata",
            )
        if self.rendering.media_type == "application/yaml":
            return (yaml.safe_dump({"type": event_type, "object": obj}) + "---\n").encode()
        return _event_line(event_type, obj)

    def _bookmark(self) -> bytes:
        obj = {
            "kind": self.resource.kind,
            "apiVersion": self.resource.api_version,
            "metadata": {"resourceVersion": str(self.server.store.resource_version)},
        }
        return _event_line("BOOKMARK", obj)

    async def run(self, response: web.StreamResponse, request: web.Request, timeout: float | None) -> None:
        started = time.monotonic()
        deadline = started + timeout if timeout else None
        # As kube-apiserver v1.20 does, a watch with a deadline gets a bookmark 2 s before it; newer servers
        # (and this emulator) also send one every `bookmark_interval` seconds.
        final_bookmark = deadline - 2.0 if deadline and self.bookmarks and timeout and timeout > 2 else None
        next_bookmark = started + self.server.bookmark_interval if self.bookmarks else None
        while True:
            now = time.monotonic()
            wakeups = [t for t in (deadline, final_bookmark, next_bookmark) if t is not None]
            wait = max(0.0, min(wakeups) - now) if wakeups else None
            try:
                async with asyncio.timeout(wait):
                    event_type, obj = await self.queue.get()
            except TimeoutError:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    return
                if self.queue.empty() and (
                    (final_bookmark is not None and now >= final_bookmark)
                    or (next_bookmark is not None and now >= next_bookmark)
                ):
                    await response.write(self._bookmark())
                if final_bookmark is not None and now >= final_bookmark:
                    final_bookmark = None
                if next_bookmark is not None and now >= next_bookmark:
                    next_bookmark = now + self.server.bookmark_interval
                continue
            if (event_type, obj) == _CLOSE:
                if self._abort and request.transport is not None:
                    request.transport.abort()
                    raise ConnectionResetError("watch cut")
                return
            await response.write(self.encode(event_type, obj))
