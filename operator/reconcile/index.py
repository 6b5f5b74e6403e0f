"""Which adapters sit on which pod: what the scheduling policies count, and who a pod's change concerns.

Written by the reconcile from the folded state after every batch of decisions, and read by it (a pod's load,
for the planner) and by the controller's router (a change of a pod wakes the adapters placed on it). The
write follows the read without an await in between, so two adapters reconciled at once cannot both take the
last free slot of a pod with a capacity.

Before every adapter has been reconciled once after a start, the statuses say what is placed (`seed`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from modeladapter.fsm.state import AdapterState
from modeladapter.operator.api.status import StatusDocument


class PlacementIndex:
    def __init__(self) -> None:
        self._placed: dict[str, tuple[str, frozenset[str]]] = {}
        """uid -> (namespace, pods holding or about to hold that adapter): what scheduling counts."""
        self._load: Counter[tuple[str, str]] = Counter()
        """(namespace, pod) -> how many entries of `_placed` name it, kept with it (`load_of` is per candidate)."""
        self._touched: dict[str, tuple[str, frozenset[str]]] = {}
        """uid -> (namespace, every pod with a placement of that adapter, in any state): who to wake."""

    def load_of(self, namespace: str, pod: str, *, excluding: str = "") -> int:
        """How many adapters (other than `excluding`) hold, or are being loaded onto, this pod."""
        held = self._placed.get(excluding)
        own = 1 if held is not None and held[0] == namespace and pod in held[1] else 0
        return self._load[(namespace, pod)] - own

    def holds(self, uid: str, namespace: str, pod: str) -> bool:
        """The adapter has a placement, in any state, on this pod."""
        touched = self._touched.get(uid)
        return touched is not None and touched[0] == namespace and pod in touched[1]

    def record(self, uid: str, namespace: str, state: AdapterState) -> None:
        """What `state` says the adapter holds (a state not yet appended has no namespace, so it is passed)."""
        if state.finalized:
            self.forget(uid)
            return
        self._set_placed(uid, (namespace, frozenset(state.selected_pods)))
        self._touched[uid] = (namespace, frozenset(p.pod for p in state.placements))

    def seed(self, uid: str, namespace: str, status: StatusDocument) -> None:
        """Count what an adapter's status says is placed, unless a reconcile already said better."""
        if uid in self._placed:
            return
        pods = {str(p.get("pod")) for p in status.get("placements") or [] if isinstance(p, Mapping)}
        pods |= {str(p) for p in status.get("instances") or []}
        self._set_placed(uid, (namespace, frozenset(pods)))

    def forget(self, uid: str) -> None:
        self._set_placed(uid, None)
        self._touched.pop(uid, None)

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
