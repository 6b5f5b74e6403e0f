"""What a reconcile reads the cluster through and reaches the engines through, as protocols.

The controller's informer caches are a `ClusterReader`, and `EngineConnections` (`modeladapter.adapters`) is
`EngineClients`; the fast tests in `tests/reconcile/` give the reconcile an in-process cluster and scripted
engines instead. The reconcile never imports the controller (an import-linter contract).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from modeladapter.adapters.base import EngineClient
from modeladapter.adapters.connections import ApiKey
from modeladapter.adapters.selection import EngineTarget
from modeladapter.operator.kube.client import Raw


class ClusterReader(Protocol):
    def adapter(self, uid: str) -> Raw | None:
        """The ModelAdapter with this uid, as last seen; None if there is none."""
        ...

    def pods_in(self, namespace: str) -> Iterable[Raw]:
        """Every pod of the namespace, as last seen."""
        ...


class EngineClients(Protocol):
    def client(self, target: EngineTarget, *, api_key: ApiKey | str | None = None) -> EngineClient: ...
