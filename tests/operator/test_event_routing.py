"""A pod change wakes only the adapters it concerns: those whose selector matches it, or that sit on it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from modeladapter.fsm.events import PlacementChanged
from modeladapter.fsm.phases import PlacementState
from modeladapter.fsm.state import AdapterState, advance
from modeladapter.operator.controller.cache import ClusterCache
from modeladapter.operator.controller.routing import EventRouter
from modeladapter.operator.kube.client import KubeApi
from modeladapter.operator.reconcile.echoes import StatusEchoes
from modeladapter.operator.reconcile.index import PlacementIndex

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def adapter(uid: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"uid": uid, "name": uid, "namespace": namespace, "resourceVersion": "1"},
        "spec": {"podSelector": {"matchLabels": labels}, "artifactURL": "hf://org/repo"},
    }


def pod(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels, "resourceVersion": "1"}}


class Cluster:
    """The cache, the router behind it, and what the reconciles share with the router."""

    def __init__(self, woken: list[str]) -> None:
        self.cache = ClusterCache(cast(KubeApi, None))
        self.index = PlacementIndex()
        self.echoes = StatusEchoes()
        self.cache.listen(EventRouter(self.cache, woken.append, index=self.index, echoes=self.echoes))
        self._adapter_changed = self.cache._adapter_changed
        self._pod_changed = self.cache.pods.on_change
        self.adapter = self.cache.adapter


def view() -> tuple[Cluster, list[str]]:
    woken: list[str] = []
    cluster = Cluster(woken)
    cluster._adapter_changed(None, adapter("llama", "team-a", {"model": "llama"}))
    cluster._adapter_changed(None, adapter("qwen", "team-a", {"model": "qwen"}))
    cluster._adapter_changed(None, adapter("llama-elsewhere", "team-b", {"model": "llama"}))
    woken.clear()
    return cluster, woken


def test_a_pod_wakes_the_adapters_whose_selector_matches_it_in_its_namespace() -> None:
    cluster, woken = view()
    cluster._pod_changed(None, pod("p", "team-a", {"model": "llama"}))
    assert woken == ["llama"]


def test_a_pod_that_leaves_a_selector_wakes_the_adapter_it_left() -> None:
    cluster, woken = view()
    cluster._pod_changed(pod("p", "team-a", {"model": "llama"}), pod("p", "team-a", {"model": "other"}))
    assert woken == ["llama"]


def test_an_unrelated_pod_wakes_nobody() -> None:
    cluster, woken = view()
    cluster._pod_changed(None, pod("p", "team-a", {"model": "mistral"}))
    assert woken == []


def test_a_pod_an_adapter_sits_on_wakes_it_even_without_a_selector_match() -> None:
    cluster, woken = view()
    state = advance(
        AdapterState(namespace="team-a", name="qwen"),
        [PlacementChanged(pod="p", from_state=None, to_state=PlacementState.LOADED, trigger="assign")],
        at=NOW,
    )
    cluster.index.record("qwen", "team-a", state)
    cluster._pod_changed(pod("p", "team-a", {"model": "mistral"}), None)
    assert woken == ["qwen"]


def test_placements_count_towards_a_pods_load_for_every_other_adapter() -> None:
    index = PlacementIndex()
    state = advance(
        AdapterState(namespace="team-a", name="qwen"),
        [PlacementChanged(pod="p", from_state=None, to_state=PlacementState.LOADED, trigger="assign")],
        at=NOW,
    )
    index.record("qwen", "team-a", state)
    assert index.load_of("team-a", "p") == 1
    assert index.load_of("team-a", "p", excluding="qwen") == 0
    assert index.load_of("team-b", "p") == 0


def test_a_relist_that_finds_a_name_re_created_forgets_the_old_adapter_and_wakes_both() -> None:
    cluster, woken = view()
    old = adapter("llama", "team-a", {"model": "llama"})
    new = adapter("llama-2", "team-a", {"model": "llama"})
    new["metadata"]["name"] = "llama"
    cluster._adapter_changed(old, new)
    assert cluster.adapter("llama") is None and cluster.adapter("llama-2") is new
    assert woken == ["llama", "llama-2"]


def test_the_operators_own_status_writes_do_not_wake_the_adapter() -> None:
    cluster, woken = view()
    before = adapter("llama", "team-a", {"model": "llama"})
    after = {**before, "status": {"phase": "Running"}, "metadata": {**before["metadata"], "resourceVersion": "2"}}
    cluster._adapter_changed(before, after)
    assert woken == []
    respec = {**after, "metadata": {**after["metadata"], "generation": 2, "resourceVersion": "3"}}
    cluster._adapter_changed(after, respec)
    assert woken == ["llama"]


def test_a_pods_load_follows_placements_as_they_move_and_end() -> None:
    index = PlacementIndex()

    def on(*pods: str) -> AdapterState:
        changes = [
            PlacementChanged(pod=p, from_state=None, to_state=PlacementState.LOADED, trigger="assign") for p in pods
        ]
        return advance(AdapterState(namespace="team-a", name="x"), changes, at=NOW)

    index.record("qwen", "team-a", on("p", "q"))
    index.record("llama", "team-a", on("p"))
    assert (index.load_of("team-a", "p"), index.load_of("team-a", "q")) == (2, 1)
    index.record("qwen", "team-a", on("q", "r"))  # moved off p
    assert [index.load_of("team-a", pod) for pod in "pqr"] == [1, 1, 1]
    assert index.load_of("team-a", "q", excluding="qwen") == 0 and index.load_of("team-a", "p", excluding="qwen") == 1
    index.forget("qwen")
    index.forget("llama")
    assert [index.load_of("team-a", pod) for pod in "pqr"] == [0, 0, 0]
    assert not index._load, "no zero counts are kept for pods nobody holds"


def test_a_status_someone_else_wrote_wakes_the_adapter_but_its_own_echo_does_not() -> None:
    cluster, woken = view()
    before = adapter("llama", "team-a", {"model": "llama"})
    ours = {"phase": "Running", "readyReplicas": 1}
    cluster.echoes.wrote("llama", ours)
    echo = {**before, "status": dict(ours), "metadata": {**before["metadata"], "resourceVersion": "2"}}
    cluster._adapter_changed(before, echo)
    assert woken == []
    overwritten = {
        **echo,
        "status": {"phase": "Failed", "readyReplicas": 0},
        "metadata": {**echo["metadata"], "resourceVersion": "3"},
    }
    cluster._adapter_changed(echo, overwritten)
    assert woken == ["llama"]
