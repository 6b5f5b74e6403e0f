"""The operator's picture of the cluster: ModelAdapters and pods, kept current by informers, and who to wake.

Two `Informer`s (ModelAdapters, Pods) keep caches the reconciler reads instead of asking the API server on
every pass. Their change handlers route work: a ModelAdapter change enqueues that adapter; a pod change
enqueues only the adapters in the pod's namespace whose selector matches the pod before or after the change,
or that have a placement on it. The placement index (which adapters sit on which pod) is what the
scheduling policies count; the reconciler updates it from the folded state after every pass.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from modeladapter.fsm.state import AdapterState
from modeladapter.operator.kube.client import MODELADAPTERS, PODS, Kube, Raw
from modeladapter.operator.api.spec import AdapterSpec, LabelSelector, parse_spec
from modeladapter.operator.kube.informers import Informer

Enqueue = Callable[[str], None]


def _worth_a_reconcile(old: Raw, new: Raw) -> bool:
    """A change of the spec (generation), labels, finalizers or deletion; not status or annotations only.

    The operator writes status and retry annotations itself; waking up for its own writes would loop.
    """
    before, after = old.get("metadata") or {}, new.get("metadata") or {}
    return any(
        before.get(field) != after.get(field) for field in ("generation", "labels", "finalizers", "deletionTimestamp")
    )


def uid_of(obj: Raw) -> str:
    return str((obj.get("metadata") or {}).get("uid", ""))


def labels_of(obj: Raw | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("labels") or {})


class ClusterView:
    def __init__(self, kube: Kube, enqueue: Enqueue, *, namespace: str | None = None) -> None:
        self.enqueue = enqueue
        self.adapters = Informer(kube, MODELADAPTERS, self._adapter_changed, namespace=namespace)
        self.pods = Informer(kube, PODS, self._pod_changed, namespace=namespace)
        self._by_uid: dict[str, Raw] = {}
        self._selectors: dict[str, tuple[str, LabelSelector | None]] = {}
        self._placed: dict[str, tuple[str, frozenset[str]]] = {}
        """uid -> (namespace, pods holding or about to hold that adapter): what scheduling counts."""
        self._load: Counter[tuple[str, str]] = Counter()
        """(namespace, pod) -> how many entries of `_placed` name it, kept with it (`load_of` is per candidate)."""
        self._touched: dict[str, tuple[str, frozenset[str]]] = {}
        """uid -> (namespace, every pod with a placement of that adapter, in any state): who to wake."""
        self._written: dict[str, Raw] = {}
        """uid -> the status this operator last wrote: a status that comes back different was written by someone else."""

    async def run(self) -> None:
        await asyncio.gather(self.adapters.run(), self.pods.run())

    async def wait_synced(self) -> None:
        await asyncio.gather(self.adapters.synced.wait(), self.pods.synced.wait())

    @property
    def synced(self) -> bool:
        return self.adapters.synced.is_set() and self.pods.synced.is_set()

    # --- reading -----------------------------------------------------------------------------------------

    def adapter(self, uid: str) -> Raw | None:
        return self._by_uid.get(uid)

    def adapter_uids(self) -> list[str]:
        return list(self._by_uid)

    def pod(self, namespace: str, name: str) -> Raw | None:
        return self.pods.cache.get((namespace, name))

    def pods_in(self, namespace: str) -> list[Raw]:
        return [pod for (ns, _), pod in self.pods.cache.items() if ns == namespace]

    def load_of(self, namespace: str, pod: str, *, excluding: str = "") -> int:
        """How many adapters (other than `excluding`) hold, or are being loaded onto, this pod."""
        held = self._placed.get(excluding)
        own = 1 if held is not None and held[0] == namespace and pod in held[1] else 0
        return self._load[(namespace, pod)] - own

    # --- the placement index -----------------------------------------------------------------------------

    def record_placements(self, uid: str, namespace: str, state: AdapterState) -> None:
        """What `state` says the adapter holds; a state not yet appended has no namespace, so it is passed."""
        if state.finalized:
            self.forget(uid)
            return
        self._set_placed(uid, (namespace, frozenset(state.selected_pods)))
        self._touched[uid] = (namespace, frozenset(p.pod for p in state.placements))

    def _set_placed(self, uid: str, entry: tuple[str, frozenset[str]] | None) -> None:
        old = self._placed.pop(uid, None)
        if old is not None:
            for pod in old[1]:
                key = (old[0], pod)
                self._load[key] -= 1
                if self._load[key] <= 0:
                    del self._load[key]  # pods come and go under new names: keep no zeros
        if entry is not None:
            self._placed[uid] = entry
            self._load.update((entry[0], pod) for pod in entry[1])

    def forget(self, uid: str) -> None:
        self._set_placed(uid, None)
        self._touched.pop(uid, None)
        self._written.pop(uid, None)

    def wrote_status(self, uid: str, status: Raw) -> None:
        """Remember the status just written, so that its echo from the watch does not wake the adapter."""
        self._written[uid] = dict(status)

    def _status_overwritten(self, uid: str, adapter: Raw) -> bool:
        """The object's status differs from what this operator last wrote (someone else wrote it)."""
        written = self._written.get(uid)
        current = adapter.get("status") or {}
        return written is not None and any(current.get(key) != value for key, value in written.items())

    def seed_placements_from_status(self) -> None:
        """Before every adapter has been reconciled once, count what their statuses say is placed."""
        for uid, adapter in self._by_uid.items():
            if uid in self._placed:
                continue
            status = adapter.get("status") or {}
            pods = {str(p.get("pod")) for p in status.get("placements") or [] if isinstance(p, dict)}
            pods |= {str(p) for p in status.get("instances") or []}
            self._set_placed(uid, (str(adapter["metadata"].get("namespace", "")), frozenset(pods)))

    # --- routing -----------------------------------------------------------------------------------------

    def _adapter_changed(self, old: Raw | None, new: Raw | None) -> None:
        if old is not None and new is not None and uid_of(old) != uid_of(new):
            # Deleted and re-created under the same name while the watch was away (a relist saw only the end).
            self._adapter_changed(old, None)
            self._adapter_changed(None, new)
            return
        current = new or old
        assert current is not None
        uid = uid_of(current)
        if new is None:
            self._by_uid.pop(uid, None)
            self._selectors.pop(uid, None)
        else:
            self._by_uid[uid] = new
            if old is not None and not _worth_a_reconcile(old, new) and not self._status_overwritten(uid, new):
                return  # our own status or annotation write coming back: nothing to act on
        self.enqueue(uid)

    def _pod_changed(self, old: Raw | None, new: Raw | None) -> None:
        current = new or old
        assert current is not None
        metadata = current.get("metadata") or {}
        namespace, name = str(metadata.get("namespace", "")), str(metadata.get("name", ""))
        before, after = labels_of(old), labels_of(new)
        for uid in self._interested(namespace, name, (before, after)):
            self.enqueue(uid)

    def _interested(self, namespace: str, pod: str, label_sets: Iterable[dict[str, str]]) -> list[str]:
        label_sets = list(label_sets)
        interested = []
        for uid, adapter in self._by_uid.items():
            if (adapter.get("metadata") or {}).get("namespace") != namespace:
                continue
            touched = self._touched.get(uid)
            if touched is not None and pod in touched[1]:
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
