"""The operator's only door to the Kubernetes API: raw JSON over kubernetes-asyncio's `ApiClient`.

kubernetes-asyncio provides the configuration (kubeconfig, in-cluster service account), authentication and
the HTTP session; this module sends requests through it and keeps objects as plain dicts (kopf's "raw"
convention), which is faster than the generated models and loses nothing. Errors come back as `KubeError`
subclasses keyed on the API's `Status` reason, so callers branch on `NotFound` or `Conflict`, not on codes.

Custom objects are patched with `application/merge-patch+json` (a dict body would otherwise go out as a JSON
patch and be refused); built-in objects may use strategic merge. Watches are read as newline-delimited JSON
chunk by chunk, so an object larger than a stream reader's line limit cannot break them.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Protocol
from urllib.parse import quote

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.config import ConfigException

Raw = dict[str, Any]

MERGE_PATCH: Final = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH: Final = "application/strategic-merge-patch+json"
JSON: Final = "application/json"
REQUEST_TIMEOUT: Final = 30.0


@dataclass(frozen=True, slots=True)
class Resource:
    """A REST collection: group ("" for core), version, plural, and whether it lives in namespaces."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
            if subresource:
                base += f"/{subresource}"
        return base


MODELADAPTERS: Final = Resource("model.aibrix.ai", "v1alpha1", "modeladapters", "ModelAdapter")
PODS: Final = Resource("", "v1", "pods", "Pod")
SERVICES: Final = Resource("", "v1", "services", "Service")
SECRETS: Final = Resource("", "v1", "secrets", "Secret")
EVENTS: Final = Resource("", "v1", "events", "Event")
ENDPOINTSLICES: Final = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
LEASES: Final = Resource("coordination.k8s.io", "v1", "leases", "Lease")
HTTPROUTES: Final = Resource("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")


class KubeError(Exception):
    """The API answered with an error `Status` (or not at all)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    pass


class AlreadyExists(KubeError):
    pass


class Expired(KubeError):
    """410: the resourceVersion is older than the server keeps; list again."""


class Unreachable(KubeError):
    """No answer: the API server is down, unreachable, or too slow."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "Unreachable", message)


_BY_REASON: Final[dict[str, type[KubeError]]] = {
    "NotFound": NotFound,
    "Conflict": Conflict,
    "AlreadyExists": AlreadyExists,
    "Expired": Expired,
    "Gone": Expired,
}


def error_from(status: int, body: Any) -> KubeError:
    reason = body.get("reason", "") if isinstance(body, Mapping) else ""
    message = body.get("message", "") if isinstance(body, Mapping) else str(body)[:500]
    if not reason:
        reason = {404: "NotFound", 409: "Conflict", 410: "Expired"}.get(status, f"HTTP{status}")
    return _BY_REASON.get(reason, KubeError)(status, reason, message)


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str
    """ADDED, MODIFIED, DELETED or BOOKMARK (ERROR events are raised as `KubeError`)."""
    object: Raw


class KubeApi(Protocol):
    """The verbs the operator uses. `Kube` speaks them over HTTP; the tests' in-process API
    (`modeladapter.sandbox.apiserver.inprocess`) answers them from the emulator's store directly."""

    async def get(self, resource: Resource, namespace: str | None, name: str) -> Raw: ...

    async def list(
        self, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None
    ) -> tuple[list[Raw], str]: ...

    async def create(self, resource: Resource, namespace: str | None, body: Raw) -> Raw: ...

    async def replace(self, resource: Resource, namespace: str | None, name: str, body: Raw) -> Raw: ...

    async def patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch: Raw,
        *,
        subresource: str | None = None,
        content_type: str = MERGE_PATCH,
    ) -> Raw: ...

    async def delete(self, resource: Resource, namespace: str | None, name: str) -> None: ...

    def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str,
        timeout_seconds: int = 300,
        label_selector: str | None = None,
    ) -> AsyncIterator[WatchEvent]: ...


async def load_configuration(kubeconfig: str | None) -> client.Configuration:
    """`kubeconfig` if given; else the in-cluster service account; else `~/.kube/config`."""
    configuration = client.Configuration()
    if kubeconfig:
        await config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        return configuration
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return configuration
        except ConfigException:
            pass
    default = Path.home() / ".kube" / "config"
    if not default.exists():
        raise ConfigException("no --kubeconfig, no in-cluster service account, and no ~/.kube/config")
    await config.load_kube_config(config_file=str(default), client_configuration=configuration)
    return configuration


class Kube:
    """Raw-JSON requests to the API server, through one kubernetes-asyncio `ApiClient`."""

    def __init__(self, api: client.ApiClient, *, timeout: float = REQUEST_TIMEOUT) -> None:
        self.api = api
        self.timeout = timeout

    @classmethod
    async def connect(cls, kubeconfig: str | None) -> Kube:
        return cls(client.ApiClient(await load_configuration(kubeconfig)))

    async def __aenter__(self) -> Kube:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.api.close()

    # --- verbs --------------------------------------------------------------------------------------------

    async def get(self, resource: Resource, namespace: str | None, name: str) -> Raw:
        return await self.request("GET", resource.path(namespace, name))

    async def list(
        self, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None
    ) -> tuple[list[Raw], str]:
        """Every object (following `continue`), and the list's resourceVersion to watch from."""
        items: list[Raw] = []
        token: str | None = None
        while True:
            query: list[tuple[str, str]] = [("limit", "500")]
            if label_selector:
                query.append(("labelSelector", label_selector))
            if token:
                query.append(("continue", token))
            page = await self.request("GET", resource.path(namespace), query=query)
            items.extend(page.get("items") or [])
            metadata = page.get("metadata") or {}
            token = metadata.get("continue")
            if not token:
                return items, str(metadata.get("resourceVersion", ""))

    async def create(self, resource: Resource, namespace: str | None, body: Raw) -> Raw:
        return await self.request("POST", resource.path(namespace), body=body)

    async def replace(self, resource: Resource, namespace: str | None, name: str, body: Raw) -> Raw:
        return await self.request("PUT", resource.path(namespace, name), body=body)

    async def patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch: Raw,
        *,
        subresource: str | None = None,
        content_type: str = MERGE_PATCH,
    ) -> Raw:
        path = resource.path(namespace, name, subresource)
        return await self.request("PATCH", path, body=patch, content_type=content_type)

    async def delete(self, resource: Resource, namespace: str | None, name: str) -> None:
        await self.request("DELETE", resource.path(namespace, name))

    async def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str,
        timeout_seconds: int = 300,
        label_selector: str | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Events after `resource_version`, bookmarks included, until the server ends the stream."""
        query = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        if label_selector:
            query.append(("labelSelector", label_selector))
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=timeout_seconds + 30)
        response = await self._send("GET", resource.path(namespace), query=query, timeout=timeout)
        try:
            if response.status >= 400:
                raise error_from(response.status, await _json_or_text(response))
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield _watch_event(json.loads(line))
        except (aiohttp.ClientError, TimeoutError) as error:
            raise Unreachable(f"watch of {resource.plural} ended: {type(error).__name__}: {error}") from error
        finally:
            response.release()

    # --- transport ----------------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Raw | None = None,
        content_type: str = JSON,
    ) -> Raw:
        response = await self._send(method, path, query=query, body=body, content_type=content_type)
        try:
            document = await _json_or_text(response)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise Unreachable(f"{method} {path}: {type(error).__name__}: {error}") from error
        finally:
            response.release()
        if response.status >= 400:
            raise error_from(response.status, document)
        return document if isinstance(document, dict) else {}

    async def _send(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Raw | None = None,
        content_type: str = JSON,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        try:
            response: aiohttp.ClientResponse = await self.api.call_api(
                path,
                method,
                query_params=list(query),
                header_params={"Content-Type": content_type, "Accept": JSON},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout or aiohttp.ClientTimeout(total=self.timeout),
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise Unreachable(f"{method} {path}: {type(error).__name__}: {error}") from error
        return response


async def _json_or_text(response: aiohttp.ClientResponse) -> Any:
    data = await response.read()
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")


def _watch_event(document: Any) -> WatchEvent:
    if not isinstance(document, dict) or not isinstance(document.get("object"), dict):
        raise KubeError(0, "BadWatchEvent", f"not a watch event: {str(document)[:200]}")
    kind, obj = str(document.get("type")), document["object"]
    if kind == "ERROR":
        raise error_from(int(obj.get("code") or 0), obj)
    return WatchEvent(kind, obj)
