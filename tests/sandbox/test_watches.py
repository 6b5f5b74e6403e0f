"""Contract: WATCH — resume from a resourceVersion, synthetic ADDED, bookmarks, timeoutSeconds, 410 Expired in
the stream, and label-selector watches in which leaving the selector reads as DELETED."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Kube


def summary(events: list[dict]) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(e["type"], e["object"]["metadata"]["name"]) for e in events]


async def test_a_watch_from_the_list_resource_version_sees_each_later_change_once(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("before"))
    listed = await kube.get(kube.ma())
    version = listed.body["metadata"]["resourceVersion"]
    async with kube.watch(kube.ma(), resourceVersion=version) as watch:
        created = await kube.create(kube.ma(), kube.adapter("a"))
        await kube.patch(kube.ma("a"), {"spec": {"replicas": 2}})
        await kube.delete(kube.ma("a"))
        events = await watch.collect(3)
        assert await watch.nothing_more()
    assert summary(events) == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and len(set(versions)) == 3
    assert versions[0] == int(created["metadata"]["resourceVersion"])
    assert events[2]["object"]["spec"]["replicas"] == 2  # DELETED carries the last state


async def test_a_watch_resumes_after_a_given_resource_version_without_replaying_earlier_events(kube: Kube) -> None:
    first = await kube.create(kube.ma(), kube.adapter("a"))
    await kube.patch(kube.ma("a"), {"spec": {"replicas": 2}})
    await kube.create(kube.ma(), kube.adapter("b"))
    async with kube.watch(kube.ma(), resourceVersion=first["metadata"]["resourceVersion"]) as watch:
        events = await watch.collect(2)
        assert await watch.nothing_more()
    assert summary(events) == [("MODIFIED", "a"), ("ADDED", "b")]


async def test_a_watch_without_a_resource_version_starts_with_synthetic_added_events(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    await kube.create(kube.ma(), kube.adapter("b"))
    for version in ("", "0"):
        params = {"resourceVersion": version} if version else {}
        async with kube.watch(kube.ma(), **params) as watch:
            events = await watch.collect(2)
            await kube.patch(kube.ma("a"), {"spec": {"replicas": int(version or 5) + 1}})
            later = await watch.collect(1)
        assert sorted(summary(events)) == [("ADDED", "a"), ("ADDED", "b")]
        assert summary(later) == [("MODIFIED", "a")]


async def test_a_watch_from_a_resource_version_older_than_the_window_gets_410_in_the_stream(kube: Kube) -> None:
    async with kube.watch(kube.ma(), resourceVersion="1") as watch:
        event = await watch.next()
        assert event is not None
        assert event["type"] == "ERROR"
        status = event["object"]
        assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
        assert status["message"].startswith("too old resource version: 1 (")
        assert await watch.next() is None


async def test_bookmarks_carry_only_the_resource_version_and_never_go_backwards(kube: Kube) -> None:
    # kube-apiserver v1.20 sends a bookmark 2 s before the watch's deadline, and only once its watch cache has
    # seen an event for the resource since it started: keep the resource busy while watching.
    created = await kube.create(kube.ma(), kube.adapter("a"))

    async def keep_writing() -> None:
        for replicas in range(1, 12):
            await asyncio.sleep(0.4)
            await kube.patch(kube.ma("a"), {"spec": {"replicas": replicas}})

    events = []
    async with kube.watch(
        kube.ma(),
        resourceVersion=created["metadata"]["resourceVersion"],
        allowWatchBookmarks="true",
        timeoutSeconds="4",
    ) as watch:
        writer = asyncio.create_task(keep_writing())
        while (event := await watch.next(timeout=10)) is not None:
            events.append(event)
        await writer
    bookmarks = [n for n, e in enumerate(events) if e["type"] == "BOOKMARK"]
    assert bookmarks, [e["type"] for e in events]
    for index in bookmarks:
        bookmark = events[index]["object"]
        assert (bookmark["kind"], bookmark["apiVersion"]) == ("ModelAdapter", "model.aibrix.ai/v1alpha1")
        assert set(bookmark) == {"kind", "apiVersion", "metadata"}
        assert set(bookmark["metadata"]) <= {"resourceVersion", "creationTimestamp"}
        seen = [int(e["object"]["metadata"]["resourceVersion"]) for e in events[:index] if e["type"] == "MODIFIED"]
        assert int(bookmark["metadata"]["resourceVersion"]) >= max(seen, default=0)


async def test_timeout_seconds_closes_the_stream(kube: Kube) -> None:
    started = time.monotonic()
    async with kube.watch(kube.ma(), timeoutSeconds="1") as watch:
        assert await watch.next_non_bookmark(timeout=10) is None
    assert 0.5 < time.monotonic() - started < 8


async def test_leaving_a_label_selector_reads_as_deleted_and_returning_as_added(kube: Kube) -> None:
    body = kube.adapter("a")
    body["metadata"]["labels"] = {"tier": "gold"}
    created = await kube.create(kube.ma(), body)
    async with kube.watch(
        kube.ma(), labelSelector="tier=gold", resourceVersion=created["metadata"]["resourceVersion"]
    ) as watch:
        left = await kube.patch(kube.ma("a"), {"metadata": {"labels": {"tier": "silver"}}})
        await kube.patch(kube.ma("a"), {"spec": {"replicas": 2}})  # outside the selector: not seen
        await kube.patch(kube.ma("a"), {"metadata": {"labels": {"tier": "gold"}}})
        events = await watch.collect(2)
        assert await watch.nothing_more()
    assert summary(events) == [("DELETED", "a"), ("ADDED", "a")]
    departed = events[0]["object"]
    assert departed["metadata"]["labels"] == {"tier": "gold"}  # the state it had while it matched
    assert departed["metadata"]["resourceVersion"] == left.body["metadata"]["resourceVersion"]
    assert events[1]["object"]["spec"]["replicas"] == 2


async def test_a_field_selector_watch_sees_only_that_object(kube: Kube) -> None:
    listed = await kube.get(kube.ma())
    async with kube.watch(
        kube.ma(), fieldSelector="metadata.name=b", resourceVersion=listed.body["metadata"]["resourceVersion"]
    ) as watch:
        await kube.create(kube.ma(), kube.adapter("a"))
        await kube.create(kube.ma(), kube.adapter("b"))
        events = await watch.collect(1)
        assert await watch.nothing_more()
    assert summary(events) == [("ADDED", "b")]


async def test_an_all_namespaces_watch_sees_every_namespace(kube: Kube) -> None:
    listed = await kube.get("/apis/model.aibrix.ai/v1alpha1/modeladapters")
    async with kube.watch(
        "/apis/model.aibrix.ai/v1alpha1/modeladapters", resourceVersion=listed.body["metadata"]["resourceVersion"]
    ) as watch:
        await kube.create(kube.ma(), kube.adapter("a"))
        events = await watch.collect(1)
    assert events[0]["object"]["metadata"]["namespace"] == kube.namespace


async def test_a_namespaced_watch_does_not_see_other_namespaces(kube: Kube) -> None:
    other = f"{kube.namespace}-o"
    await kube.create("/api/v1/namespaces", {"metadata": {"name": other}})
    try:
        listed = await kube.get(kube.ma())
        async with kube.watch(kube.ma(), resourceVersion=listed.body["metadata"]["resourceVersion"]) as watch:
            await kube.create(f"/apis/model.aibrix.ai/v1alpha1/namespaces/{other}/modeladapters", kube.adapter("x"))
            await kube.create(kube.ma(), kube.adapter("mine"))
            events = await watch.collect(1)
        assert summary(events) == [("ADDED", "mine")]
    finally:
        await kube.delete(f"/api/v1/namespaces/{other}")


async def test_watch_accepts_one_true_and_capitalised_true(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    for flag in ("1", "True", "true"):
        async with kube.session.get(kube.url + kube.ma(), params={"watch": flag, "timeoutSeconds": "1"}) as r:
            first = await r.content.readline()
        assert b'"ADDED"' in first, (flag, first)


async def test_pod_status_changes_reach_a_pod_watch(kube: Kube) -> None:
    created = await kube.create(kube.core("pods"), kube.pod("p", app="engine"))
    async with kube.watch(
        kube.core("pods"), labelSelector="app=engine", resourceVersion=created["metadata"]["resourceVersion"]
    ) as watch:
        await kube.patch(kube.core("pods", "p", "status"), {"status": {"podIP": "127.0.0.2"}}, kind="strategic")
        events = await watch.collect(1)
    assert events[0]["type"] == "MODIFIED"
    assert events[0]["object"]["status"]["podIP"] == "127.0.0.2"
