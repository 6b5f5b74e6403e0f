"""Who a change concerns: a ModelAdapter change wakes that adapter; a pod change wakes the adapters of the pod's
namespace whose selector matches the pod before or after the change, or that have a placement on it; a change
of a Service or EndpointSlice the operator owns wakes its owner, which puts it back if someone else deleted or
edited it (the operator's own writes, which hold what its fingerprint annotation says, wake nobody).

The operator writes status and retry annotations itself, and waking up for its own writes would loop, so an
adapter whose change is only there is woken only if the status is not the one this operator last wrote
(`StatusEchoes`): someone else wrote it, and it is put right at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from modeladapter.operator.api.spec import AdapterSpec, LabelSelector, parse_spec
from modeladapter.operator.controller.cache import ClusterCache, uid_of
from modeladapter.operator.kube.client import Raw
from modeladapter.operator.kube.services import OwnedKind, as_written
from modeladapter.operator.reconcile.echoes import StatusEchoes
from modeladapter.operator.reconcile.index import PlacementIndex

Enqueue = Callable[[str], None]


def worth_a_reconcile(old: Raw, new: Raw) -> bool:
    """A change of the spec (generation), labels, finalizers or deletion; not status or annotations only."""
    before, after = old.get("metadata") or {}, new.get("metadata") or {}
    return any(
        before.get(field) != after.get(field) for field in ("generation", "labels", "finalizers", "deletionTimestamp")
    )


def labels_of(obj: Raw | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("labels") or {})


class EventRouter:
    def __init__(self, cache: ClusterCache, enqueue: Enqueue, *, index: PlacementIndex, echoes: StatusEchoes) -> None:
        self.cache = cache
        self.enqueue = enqueue
        self.index = index
        self.echoes = echoes
        self._selectors: dict[str, tuple[str, LabelSelector | None]] = {}
        """uid -> (resourceVersion, the selector parsed from that version)."""

    def adapter_changed(self, old: Raw | None, new: Raw | None) -> None:
        current = new or old
        assert current is not None
        uid = uid_of(current)
        if new is None:
            self._selectors.pop(uid, None)
        elif (
            old is not None
            and not worth_a_reconcile(old, new)
            and not self.echoes.overwritten(uid, new.get("status") or {})
        ):
            return  # our own status or annotation write coming back: nothing to act on
        self.enqueue(uid)

    def pod_changed(self, old: Raw | None, new: Raw | None) -> None:
        current = new or old
        assert current is not None
        metadata = current.get("metadata") or {}
        namespace, name = str(metadata.get("namespace", "")), str(metadata.get("name", ""))
        for uid in self._interested(namespace, name, (labels_of(old), labels_of(new))):
            self.enqueue(uid)

    def owned_changed(self, kind: OwnedKind, old: Raw | None, new: Raw | None) -> None:
        if new is not None and as_written(kind, new):
            return  # the operator's own write coming back, or a change to what it does not own
        for obj in (old, new):
            for owner in ((obj or {}).get("metadata") or {}).get("ownerReferences") or ():
                uid = str(owner.get("uid", ""))
                if owner.get("kind") == "ModelAdapter" and owner.get("controller") and self.cache.adapter(uid):
                    self.enqueue(uid)
                    return

    def _interested(self, namespace: str, pod: str, label_sets: Iterable[dict[str, str]]) -> list[str]:
        label_sets = list(label_sets)
        interested = []
        for uid, adapter in self.cache.adapters_in(namespace):
            if self.index.holds(uid, namespace, pod):
                interested.append(uid)
                continue
            selector = self._selector(uid, adapter)
            if selector is not None and any(labels and selector.matches(labels) for labels in label_sets):
                interested.append(uid)
        return interested

    def _selector(self, uid: str, adapter: Raw) -> LabelSelector | None:
        version = str((adapter.get("metadata") or {}).get("resourceVersion", ""))
        cached = self._selectors.get(uid)
        if cached is not None and cached[0] == version:
            return cached[1]
        parsed: Any = parse_spec(adapter)
        selector = parsed.pod_selector if isinstance(parsed, AdapterSpec) else None
        self._selectors[uid] = (version, selector)
        return selector
