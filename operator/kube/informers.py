"""List, then watch, forever: a cache of one resource kept current, and a callback for every change.

`Informer.run()` lists the resource, hands every object to `on_change`, then watches from the list's
resourceVersion with bookmarks. When the stream ends (server timeout, a cut connection) it watches again from
the last resourceVersion it saw; when the server answers 410 Expired it lists again, and objects that
vanished while it was away are reported as deleted. Errors back off (0.2 s doubling to 10 s, with jitter)
and never end the loop. kopf's `continuous_watch` is the model; the cache plays the part of an informer's
store, which the reconciler reads instead of asking the API server every time.

`on_change(old, new)` gets the previous and the current object (None for created / deleted). It must not
block: it updates indexes and enqueues keys.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Final

from modeladapter.operator.kube.client import Expired, KubeApi, KubeError, Raw, Resource

log = logging.getLogger(__name__)

Key = tuple[str, str]
"""(namespace, name)."""
ChangeHandler = Callable[[Raw | None, Raw | None], None]

WATCH_TIMEOUT_SECONDS: Final = 300
BACKOFF_START: Final = 0.2
BACKOFF_CAP: Final = 10.0


def key_of(obj: Raw) -> Key:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


class Informer:
    def __init__(
        self,
        kube: KubeApi,
        resource: Resource,
        on_change: ChangeHandler,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        watch_timeout: int = WATCH_TIMEOUT_SECONDS,
    ) -> None:
        self.kube = kube
        self.resource = resource
        self.on_change = on_change
        self.namespace = namespace
        self.label_selector = label_selector
        self.watch_timeout = watch_timeout
        self.cache: dict[Key, Raw] = {}
        self.synced = asyncio.Event()
        """Set once the first list is in the cache: until then, absence means nothing."""
        self.resource_version = ""
        self.relists = 0
        self.errors = 0

    async def run(self) -> None:
        delay = BACKOFF_START
        while True:
            try:
                if not self.resource_version:
                    await self._relist()
                await self._watch()
                delay = BACKOFF_START
            except Expired:
                log.info("%s: resourceVersion %s expired; listing again", self.resource.plural, self.resource_version)
                self.resource_version = ""
            except (KubeError, ValueError) as error:
                self.errors += 1
                log.warning("%s: watch failed (%s); retrying in %.1fs", self.resource.plural, error, delay)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, BACKOFF_CAP)

    async def _relist(self) -> None:
        items, resource_version = await self.kube.list(
            self.resource, self.namespace, label_selector=self.label_selector
        )
        self.relists += 1
        fresh = {key_of(item): item for item in items}
        for key in [k for k in self.cache if k not in fresh]:
            self._apply(key, None)
        for key, item in fresh.items():
            self._apply(key, item)
        self.resource_version = resource_version
        self.synced.set()

    async def _watch(self) -> None:
        async for event in self.kube.watch(
            self.resource,
            self.namespace,
            resource_version=self.resource_version,
            timeout_seconds=self.watch_timeout,
            label_selector=self.label_selector,
        ):
            version = (event.object.get("metadata") or {}).get("resourceVersion")
            if event.type != "BOOKMARK":
                self._apply(key_of(event.object), None if event.type == "DELETED" else event.object)
            if version:
                self.resource_version = str(version)

    def _apply(self, key: Key, new: Raw | None) -> None:
        old = self.cache.get(key)
        if new is None:
            if old is None:
                return
            del self.cache[key]
        else:
            if old is not None and _version(old) == _version(new):
                return
            self.cache[key] = new
        try:
            self.on_change(old, new)
        except Exception:  # a handler bug must not stop the watch; it is logged with its traceback
            log.exception("%s: change handler failed for %s/%s", self.resource.plural, *key)


def _version(obj: Raw) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))
