"""The operator's picture of the cluster: ModelAdapters and Pods, and the Services and EndpointSlices it owns,
kept current by informers.

The reconciles read it (`modeladapter.operator.reconcile.ports.ClusterReader`) instead of asking the API
server on every pass. Every change is handed on to the listener (the `EventRouter`) once the cache holds it: a
pod's straight from its informer, a ModelAdapter's after the cache has indexed it by uid, a Service's or
EndpointSlice's (selected by the labels the operator gives them) so that one deleted or edited by someone
else is put back at once.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable
from typing import Protocol

from modeladapter.operator.kube.client import ENDPOINTSLICES, HTTPROUTES, MODELADAPTERS, PODS, SERVICES, KubeApi, Raw
from modeladapter.operator.kube.informers import Informer
from modeladapter.operator.kube.services import ADAPTER_LABEL, MANAGED_BY, MANAGED_BY_LABEL, OwnedKind


class ChangeListener(Protocol):
    def adapter_changed(self, old: Raw | None, new: Raw | None) -> None: ...

    def pod_changed(self, old: Raw | None, new: Raw | None) -> None: ...

    def owned_changed(self, kind: OwnedKind, old: Raw | None, new: Raw | None) -> None: ...


def uid_of(obj: Raw) -> str:
    return str((obj.get("metadata") or {}).get("uid", ""))


class ClusterCache:
    def __init__(self, kube: KubeApi, *, namespace: str | None = None, http_routes: bool = False) -> None:
        self.adapters = Informer(kube, MODELADAPTERS, self._adapter_changed, namespace=namespace)
        self.pods = Informer(kube, PODS, _nobody_listens, namespace=namespace)
        self.services = Informer(kube, SERVICES, _nobody_listens, namespace=namespace, label_selector=ADAPTER_LABEL)
        self.endpoint_slices = Informer(
            kube,
            ENDPOINTSLICES,
            _nobody_listens,
            namespace=namespace,
            label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}",
        )
        self.http_routes = (
            Informer(kube, HTTPROUTES, _nobody_listens, namespace=namespace, label_selector=ADAPTER_LABEL)
            if http_routes
            else None
        )
        """Watched only when the operator publishes HTTPRoutes (the Gateway API CRDs may not be installed)."""
        self._by_uid: dict[str, Raw] = {}
        self._listener: ChangeListener | None = None

    @property
    def _informers(self) -> tuple[Informer, ...]:
        """The informers the cache must have synced before it answers."""
        return self.adapters, self.pods, self.services, self.endpoint_slices

    def listen(self, listener: ChangeListener) -> None:
        self._listener = listener
        self.pods.on_change = listener.pod_changed
        self.services.on_change = functools.partial(listener.owned_changed, "Service")
        self.endpoint_slices.on_change = functools.partial(listener.owned_changed, "EndpointSlice")
        if self.http_routes is not None:
            self.http_routes.on_change = functools.partial(listener.owned_changed, "HTTPRoute")

    async def run(self) -> None:
        # The routes' informer is not waited for: without the Gateway API's CRDs it retries for ever, and the
        # adapters must not wait on a gateway (a route missing then is published on the adapter's next pass).
        routes = (self.http_routes,) if self.http_routes is not None else ()
        await asyncio.gather(*(informer.run() for informer in (*self._informers, *routes)))

    async def wait_synced(self) -> None:
        await asyncio.gather(*(informer.synced.wait() for informer in self._informers))

    @property
    def synced(self) -> bool:
        return all(informer.synced.is_set() for informer in self._informers)

    # --- reading (the reconcile's ClusterReader) -------------------------------------------------------------

    def adapter(self, uid: str) -> Raw | None:
        return self._by_uid.get(uid)

    def adapter_uids(self) -> list[str]:
        return list(self._by_uid)

    def adapters_in(self, namespace: str) -> Iterable[tuple[str, Raw]]:
        return [(uid, a) for uid, a in self._by_uid.items() if (a.get("metadata") or {}).get("namespace") == namespace]

    def pods_in(self, namespace: str) -> list[Raw]:
        return [pod for (ns, _), pod in self.pods.cache.items() if ns == namespace]

    # --- keeping it current ----------------------------------------------------------------------------------

    def _adapter_changed(self, old: Raw | None, new: Raw | None) -> None:
        if old is not None and new is not None and uid_of(old) != uid_of(new):
            # Deleted and re-created under the same name while the watch was away (a relist saw only the end).
            self._adapter_changed(old, None)
            self._adapter_changed(None, new)
            return
        if new is None:
            assert old is not None
            self._by_uid.pop(uid_of(old), None)
        else:
            self._by_uid[uid_of(new)] = new
        if self._listener is not None:
            self._listener.adapter_changed(old, new)


def _nobody_listens(old: Raw | None, new: Raw | None) -> None:
    """A change before a listener is set: the cache holds it, and the first sync enqueues every adapter."""
