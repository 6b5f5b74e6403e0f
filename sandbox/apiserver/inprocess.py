"""The emulator without HTTP: its `Store` answering the operator's `KubeApi` verbs directly, in the same process.

For the fast reconcile tests (`tests/reconcile/`): no sockets, no event loop of the server's own, and a clock
the test holds. The semantics are the emulator's own (resourceVersions, the status subresource, generation
bumps, finalizers, merge and strategic-merge patches, 409 and 404 as the same `KubeError`s the HTTP client
raises), which the contract suite in `tests/sandbox/` checks against a real kube-apiserver. Every object goes
out as a copy, as it would over the wire, and the background controllers (garbage collection) run after each
write, as the server runs them shortly after.

`InProcessCluster` also reads the store the way the operator's informers would after they synced
(`ClusterReader`): every write is visible to the next read.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from modeladapter.operator.kube.client import (
    MERGE_PATCH,
    MODELADAPTERS,
    PODS,
    KubeError,
    Raw,
    Resource,
    WatchEvent,
    error_from,
)
from modeladapter.sandbox.apiserver.errors import ApiError
from modeladapter.sandbox.apiserver.resources import ResourceType
from modeladapter.sandbox.apiserver.selectors import FieldSelector, parse_label_selector
from modeladapter.sandbox.apiserver.store import DeleteOptions, Store, Watcher


@contextmanager
def _as_kube_errors() -> Iterator[None]:
    try:
        yield
    except ApiError as error:
        raise error_from(error.code, error.status()) from None


class InProcessKube:
    """A `KubeApi` answered by an emulator `Store` in this process."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.requests: list[tuple[str, str, str]] = []
        """(verb, plural, name) of every request, in order: what a test may count."""

    def _type(self, resource: Resource) -> ResourceType:
        found = self.store.resource_type(resource.group, resource.version, resource.plural)
        if found is None:
            raise KubeError(404, "NotFound", f"the server could not find the requested resource ({resource.plural})")
        return found

    def _settled(self, obj: Raw) -> Raw:
        for _ in range(50):
            if not self.store.run_controllers():
                break
        return copy.deepcopy(obj)

    async def get(self, resource: Resource, namespace: str | None, name: str) -> Raw:
        self.requests.append(("get", resource.plural, name))
        with _as_kube_errors():
            return copy.deepcopy(self.store.get(self._type(resource), namespace or "", name))

    async def list(
        self, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None
    ) -> tuple[list[Raw], str]:
        self.requests.append(("list", resource.plural, ""))
        with _as_kube_errors():
            page = self.store.list_objects(
                self._type(resource), namespace, parse_label_selector(label_selector), FieldSelector()
            )
        return copy.deepcopy(page.items), str(page.resource_version)

    async def create(self, resource: Resource, namespace: str | None, body: Raw) -> Raw:
        self.requests.append(("create", resource.plural, str((body.get("metadata") or {}).get("name", ""))))
        with _as_kube_errors():
            return self._settled(self.store.create(self._type(resource), namespace or "", copy.deepcopy(body)))

    async def replace(self, resource: Resource, namespace: str | None, name: str, body: Raw) -> Raw:
        self.requests.append(("replace", resource.plural, name))
        with _as_kube_errors():
            obj, _ = self.store.update(self._type(resource), namespace or "", name, copy.deepcopy(body))
            return self._settled(obj)

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
        self.requests.append(("patch" if subresource is None else f"patch/{subresource}", resource.plural, name))
        with _as_kube_errors():
            obj = self.store.patch(
                self._type(resource),
                namespace or "",
                name,
                content_type,
                copy.deepcopy(patch),
                subresource=subresource or "",
            )
            return self._settled(obj)

    async def delete(self, resource: Resource, namespace: str | None, name: str) -> None:
        self.requests.append(("delete", resource.plural, name))
        with _as_kube_errors():
            obj, _ = self.store.delete(self._type(resource), namespace or "", name, DeleteOptions())
            self._settled(obj)

    async def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str,
        timeout_seconds: int = 300,
        label_selector: str | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """The store's changes after `resource_version`, until `timeout_seconds` pass without one."""
        events: asyncio.Queue[tuple[str, Raw]] = asyncio.Queue()
        with _as_kube_errors():
            watcher = Watcher(
                self._type(resource),
                namespace,
                parse_label_selector(label_selector),
                FieldSelector(),
                lambda kind, obj: events.put_nowait((kind, copy.deepcopy(obj))),
            )
            for kind, obj in self.store.watch(watcher, resource_version):
                events.put_nowait((kind, copy.deepcopy(obj)))
        try:
            while True:
                try:
                    async with asyncio.timeout(timeout_seconds):
                        kind, obj = await events.get()
                except TimeoutError:
                    return
                yield WatchEvent(kind, obj)
        finally:
            self.store.unwatch(watcher)


class InProcessCluster:
    """An emulated cluster in this process: its `KubeApi`, and reads as synced informers would answer them."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self.store = Store(clock=clock)
        self.kube = InProcessKube(self.store)

    def seed(self, obj: Raw) -> Raw:
        """Create an object directly, with every rule a POST applies; returns it as stored."""
        resource = self.store.type_for(obj)
        namespace = (obj.get("metadata") or {}).get("namespace", "default") if resource.namespaced else ""
        return copy.deepcopy(self.store.create(resource, namespace, copy.deepcopy(obj)))

    # --- the ClusterReader the reconcile reads through ---------------------------------------------------------

    def adapter(self, uid: str) -> Raw | None:
        for adapter in self.store.objects(MODELADAPTERS.api_version, MODELADAPTERS.kind):
            if (adapter.get("metadata") or {}).get("uid") == uid:
                return copy.deepcopy(adapter)
        return None

    def pods_in(self, namespace: str) -> list[Raw]:
        return copy.deepcopy(self.store.objects(PODS.api_version, PODS.kind, namespace))

    def objects(self, resource: Resource, namespace: str | None = None) -> list[Raw]:
        return copy.deepcopy(self.store.objects(resource.api_version, resource.kind, namespace))

    def get(self, resource: Resource, namespace: str, name: str) -> Raw | None:
        for obj in self.objects(resource, namespace):
            if (obj.get("metadata") or {}).get("name") == name:
                return obj
        return None
