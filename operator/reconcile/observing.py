"""What a reconcile sees of the pods: read once per pass from the cache, then offered to the planner with
their health and load (`modeladapter.fsm.observations.Observation`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from modeladapter.fsm.observations import Observation, SeenPod
from modeladapter.operator.api.pods import ObservedPod, observe_pod
from modeladapter.operator.api.spec import LabelSelector
from modeladapter.operator.api.view import AdapterRef
from modeladapter.operator.reconcile.index import PlacementIndex
from modeladapter.operator.reconcile.ports import ClusterReader


@dataclass(frozen=True, slots=True)
class Sight:
    """The pods of an adapter's namespace as one pass saw them."""

    ref: AdapterRef
    pods: Mapping[str, ObservedPod]
    """Every pod of the namespace, by name."""
    matching: frozenset[str]
    """Those the adapter's selector matches."""

    def observe(self, *, now: datetime, index: PlacementIndex, seed: str = "") -> Observation:
        """The planner's view, with each pod's load as the placement index has it now."""
        uid, namespace = self.ref.uid, self.ref.namespace
        pods = {
            name: SeenPod(
                view=pod.view,
                matches=name in self.matching,
                load=index.load_of(namespace, name, excluding=uid),
            )
            for name, pod in self.pods.items()
        }
        return Observation(now=now, namespace=namespace, name=self.ref.name, pods=pods, seed=seed)


def look(cluster: ClusterReader, ref: AdapterRef, selector: LabelSelector | None) -> Sight:
    """The namespace's pods, and which of them `selector` matches (none without a selector)."""
    pods = {pod.name: pod for pod in (observe_pod(raw) for raw in cluster.pods_in(ref.namespace))}
    matching = frozenset(name for name, pod in pods.items() if selector is not None and selector.matches(pod.labels))
    return Sight(ref=ref, pods=pods, matching=matching)
