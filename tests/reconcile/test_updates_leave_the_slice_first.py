"""An update touches a pod's engine only once the EndpointSlice no longer lists the pod; if the API server
refuses that write, the pod is left as it is (serving the old version) and the update is made again later."""

from __future__ import annotations

from typing import Any

import pytest

from modeladapter.operator.kube.client import ENDPOINTSLICES, KubeError
from tests.e2e.conftest import adapter_manifest as manifest
from tests.reconcile.conftest import World

OLD, NEW = "/models/sql-lora-v1", "/models/sql-lora-v2"


def refuse_slice_writes(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    patch = world.cluster.kube.patch

    async def refusing(resource: Any, *args: Any, **kwargs: Any) -> Any:
        if resource == ENDPOINTSLICES:
            raise KubeError(503, "ServiceUnavailable", "etcdserver: request timed out")
        return await patch(resource, *args, **kwargs)

    monkeypatch.setattr(world.cluster.kube, "patch", refusing)


async def test_an_update_waits_while_the_endpointslice_cannot_leave_the_pod_out(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    engines = [world.add_pod(f"pod-{i}") for i in range(2)]
    world.apply(manifest(artifactURL=OLD))
    await world.settle()
    assert sorted(world.status()["instances"]) == ["pod-0", "pod-1"]
    loads_before = [engine.count("load") for engine in engines]

    refuse_slice_writes(world, monkeypatch)
    world.apply(manifest(artifactURL=NEW))
    await world.reconcile()
    assert [engine.count("load") for engine in engines] == loads_before, "no engine touched while listed"
    assert [engine.count("unload") for engine in engines] == [0, 0]

    monkeypatch.undo()
    world.clock.advance(60)
    await world.settle()
    state = await world.state()
    assert {p.pod: p.artifact_url for p in state.placements} == {"pod-0": NEW, "pod-1": NEW}
    assert state.rollout is not None and not state.rollout.in_progress and state.rollout.halted_on is None
