"""Contract: what the server stamps on objects — uid, creationTimestamp, one global resourceVersion, generation.

resourceVersion is etcd's revision: one counter across every resource, bumped by every write (a deletion
included); a write that changes nothing is not a write. generation counts spec changes only.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Kube


async def test_create_sets_uid_creation_timestamp_resource_version_and_generation_one(kube: Kube) -> None:
    created = await kube.create(kube.ma(), kube.adapter("a"))
    meta = created["metadata"]
    assert re.fullmatch(r"[0-9a-f-]{36}", meta["uid"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    assert int(meta["resourceVersion"]) > 0
    assert meta["generation"] == 1
    assert meta["namespace"] == kube.namespace


async def test_resource_version_is_one_counter_across_all_resources(kube: Kube) -> None:
    first = await kube.create(kube.ma(), kube.adapter("a"))
    secret = await kube.create(kube.core("secrets"), {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    second = await kube.create(kube.ma(), kube.adapter("b"))
    versions = [int(o["metadata"]["resourceVersion"]) for o in (first, secret, second)]
    assert versions == sorted(versions) and len(set(versions)) == 3


async def test_every_write_gets_a_new_higher_resource_version(kube: Kube) -> None:
    created = await kube.create(kube.ma(), kube.adapter("a"))
    patched = await kube.patch(kube.ma("a"), {"metadata": {"labels": {"x": "1"}}})
    status = await kube.patch(kube.ma("a", "status"), {"status": {"phase": "Pending"}})
    versions = [int(o["metadata"]["resourceVersion"]) for o in (created, patched.body, status.body)]
    assert versions[0] < versions[1] < versions[2]


async def test_a_write_that_changes_nothing_keeps_the_resource_version(kube: Kube) -> None:
    created = await kube.create(kube.ma(), kube.adapter("a", replicas=2))
    same = await kube.patch(kube.ma("a"), {"spec": {"replicas": 2}})
    assert same.status == 200
    assert same.body["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_generation_counts_spec_changes_only(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    labelled = await kube.patch(kube.ma("a"), {"metadata": {"labels": {"x": "1"}}})
    assert labelled.body["metadata"]["generation"] == 1
    status = await kube.patch(kube.ma("a", "status"), {"status": {"phase": "Running"}})
    assert status.body["metadata"]["generation"] == 1
    spec = await kube.patch(kube.ma("a"), {"spec": {"replicas": 3}})
    assert spec.body["metadata"]["generation"] == 2
    again = await kube.patch(kube.ma("a"), {"spec": {"artifactURL": "s3://bucket/lora"}})
    assert again.body["metadata"]["generation"] == 3


async def test_creation_timestamp_and_generation_sent_by_a_client_are_ignored(kube: Kube) -> None:
    created = await kube.create(kube.ma(), kube.adapter("a"))
    sent = {"metadata": {"creationTimestamp": "2000-01-01T00:00:00Z", "generation": 42}}
    patched = await kube.patch(kube.ma("a"), sent)
    assert patched.status == 200, patched
    for key in ("creationTimestamp", "generation", "resourceVersion"):
        assert patched.body["metadata"][key] == created["metadata"][key]


async def test_changing_the_uid_is_invalid(kube: Kube) -> None:
    await kube.create(kube.ma(), kube.adapter("a"))
    patched = await kube.patch(kube.ma("a"), {"metadata": {"uid": "00000000-0000-0000-0000-000000000000"}})
    assert (patched.status, patched.reason) == (422, "Invalid")
    immutable = {
        "reason": "FieldValueInvalid",
        "field": "metadata.uid",
        "message": 'Invalid value: "00000000-0000-0000-0000-000000000000": field is immutable',
    }
    assert patched.body["details"]["causes"] == [immutable, immutable]  # the real server reports it twice


async def test_generate_name_gets_five_random_characters(kube: Kube) -> None:
    body = kube.adapter("")
    body["metadata"] = {"generateName": "lora-"}
    created = await kube.create(kube.ma(), body)
    assert re.fullmatch(r"lora-[a-z0-9]{5}", created["metadata"]["name"])
