"""The adapter's finalizer: added before anything is loaded, removed only once the log says `Finalized`, so that
a deleted ModelAdapter leaves no copy on any live pod (a crash in between finds a finalized stream and only has
to remove the finalizer)."""

from __future__ import annotations

import logging

from modeladapter.operator.api.view import FINALIZER, AdapterObject
from modeladapter.operator.kube.client import MODELADAPTERS, KubeApi, KubeError

log = logging.getLogger(__name__)


async def ensure_finalizer(kube: KubeApi, adapter: AdapterObject) -> bool:
    """True once the finalizer is on the object (a refused patch is retried by the next pass)."""
    if adapter.has_finalizer:
        return True
    ref = adapter.ref
    patch = {
        "metadata": {"finalizers": [*adapter.finalizers, FINALIZER], "resourceVersion": ref.resource_version or None}
    }
    try:
        await kube.patch(MODELADAPTERS, ref.namespace, ref.name, patch)
    except KubeError as error:
        log.info("finalizer not added to %s yet: %s", ref.key, error)
        return False
    return True


async def release_finalizer(kube: KubeApi, adapter: AdapterObject) -> None:
    """Remove the finalizer (raises `KubeError` if the API refuses; `NotFound` if the object is gone)."""
    ref = adapter.ref
    finalizers = [f for f in adapter.finalizers if f != FINALIZER]
    patch = {"metadata": {"finalizers": finalizers, "resourceVersion": ref.resource_version or None}}
    await kube.patch(MODELADAPTERS, ref.namespace, ref.name, patch)
