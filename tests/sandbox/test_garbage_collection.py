"""Contract: ownerReference garbage collection. A real cluster does it in kube-controller-manager, seconds
later; the emulator within milliseconds. Tests poll with a bound, as a client of a real cluster must."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conftest import Kube


def owned_by(owner: dict[str, Any], **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            "controller": True,
            **extra,
        }
    ]


def service(name: str, owners: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "ownerReferences": owners},
        "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 8000}]},
    }


async def test_dependents_are_deleted_after_their_owner(kube: Kube) -> None:
    owner = await kube.create(kube.ma(), kube.adapter("a"))
    await kube.create(kube.core("services"), service("a", owned_by(owner)))
    secret = {"metadata": {"name": "a", "ownerReferences": owned_by(owner)}, "stringData": {"k": "v"}}
    await kube.create(kube.core("secrets"), secret)
    await kube.delete(kube.ma("a"))
    await kube.gone(kube.core("services", "a"))
    await kube.gone(kube.core("secrets", "a"))


async def test_a_dependent_with_another_live_owner_survives_and_loses_the_dangling_reference(kube: Kube) -> None:
    first = await kube.create(kube.ma(), kube.adapter("a"))
    second = await kube.create(kube.ma(), kube.adapter("b"))
    owners = owned_by(first) + [dict(owned_by(second)[0], controller=False)]
    await kube.create(kube.core("services"), service("shared", owners))
    await kube.delete(kube.ma("a"))

    async def only_second_owner() -> bool:
        current = await kube.get(kube.core("services", "shared"))
        refs = current.body["metadata"].get("ownerReferences", [])
        return current.status == 200 and [r["name"] for r in refs] == ["b"]

    await kube.eventually(only_second_owner, what="the dangling owner reference to be removed")


async def test_orphan_deletion_keeps_dependents_and_removes_their_owner_reference(kube: Kube) -> None:
    owner = await kube.create(kube.ma(), kube.adapter("a"))
    await kube.create(kube.core("services"), service("a", owned_by(owner)))
    deleted = await kube.delete(kube.ma("a"), {"propagationPolicy": "Orphan"})
    assert "orphan" in deleted.body["metadata"]["finalizers"]
    await kube.gone(kube.ma("a"))
    orphan = await kube.get(kube.core("services", "a"))
    assert orphan.status == 200
    assert "ownerReferences" not in orphan.body["metadata"]


async def test_foreground_deletion_removes_blocking_dependents_before_the_owner(kube: Kube) -> None:
    owner = await kube.create(kube.ma(), kube.adapter("a"))
    await kube.create(kube.core("services"), service("a", owned_by(owner, blockOwnerDeletion=True)))
    await kube.delete(kube.ma("a"), {"propagationPolicy": "Foreground"})
    await kube.gone(kube.core("services", "a"))
    await kube.gone(kube.ma("a"))


async def test_a_dependent_whose_owner_never_existed_is_collected(kube: Kube) -> None:
    ghost = {
        "apiVersion": "model.aibrix.ai/v1alpha1",
        "kind": "ModelAdapter",
        "metadata": {"name": "ghost", "uid": "0b5e9a70-5b4e-4c55-9d6f-000000000000"},
    }
    await kube.create(kube.core("services"), service("orphaned", owned_by(ghost)))
    await kube.gone(kube.core("services", "orphaned"))
