"""What a change of the spec does: a new artifact reloads, a selector that leaves a pod unloads it, fewer
replicas trim; a spec that cannot be acted on, or a Secret that is missing, fails the adapter naming the field,
and fixing it brings the adapter back."""

from __future__ import annotations

from modeladapter.fsm.events import PhaseChanged, SpecRejected
from tests.e2e.conftest import adapter_manifest as manifest
from tests.reconcile.conftest import World

NEWER = "huggingface://ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora-v2"


async def test_a_new_artifact_is_loaded_where_the_old_one_was(world: World) -> None:
    engine = world.add_pod("pod-0")
    world.apply(manifest(replicas=1))
    await world.reconcile()
    world.apply(manifest(replicas=1, artifactURL=NEWER))
    await world.reconcile()
    assert engine.served == {"qwen-code-lora": "ai-blond/Qwen-Qwen2.5-Coder-1.5B-Instruct-lora-v2"}
    assert world.status()["phase"] == "Running" and world.status()["observedGeneration"] == 2


async def test_a_pod_the_selector_no_longer_matches_gives_the_adapter_back(world: World) -> None:
    world.add_pod("pod-0")
    gone = world.add_pod(
        "pod-1",
        labels={
            "model.aibrix.ai/name": "qwen-coder-1-5b-instruct",
            "pool": "b",
            "adapter.model.aibrix.ai/enabled": "true",
        },
    )
    world.apply(manifest(replicas=None))
    await world.reconcile()
    assert sorted(world.status()["instances"]) == ["pod-0", "pod-1"]
    selector = {
        "matchLabels": {"model.aibrix.ai/name": "qwen-coder-1-5b-instruct"},
        "matchExpressions": [{"key": "pool", "operator": "DoesNotExist"}],
    }
    world.apply(manifest(replicas=None, podSelector=selector))
    await world.reconcile()
    assert world.status()["instances"] == ["pod-0"] and gone.served == {}


async def test_fewer_replicas_unload_the_surplus(world: World) -> None:
    for index in range(3):
        world.add_pod(f"pod-{index}")
    world.apply(manifest(replicas=3))
    await world.reconcile()
    world.apply(manifest(replicas=1))
    await world.reconcile()
    assert len(world.status()["instances"]) == 1
    assert sum(len(world.engine(f"pod-{i}").served) for i in range(3)) == 1


async def test_an_invalid_spec_fails_naming_the_field_and_what_is_loaded_stays(world: World) -> None:
    engine = world.add_pod("pod-0")
    world.apply(manifest(replicas=1))
    await world.reconcile()
    world.apply(manifest(replicas=1, artifactURL="hf://lora"))  # the CRD lets it through
    await world.reconcile()
    ready = world.condition("Ready")
    assert (world.status()["phase"], ready["reason"]) == ("Failed", "InvalidSpec")
    assert ready["message"].startswith("spec.artifactURL: a Hugging Face artifact is hf://ORG/REPO")
    assert [e.field for e in await world.events() if isinstance(e, SpecRejected)] == ["spec.artifactURL"]
    assert engine.served.keys() == {"qwen-code-lora"}, "the old version keeps serving until the spec is fixed"
    world.apply(manifest(replicas=1))
    await world.reconcile()
    triggers = [e.trigger for e in await world.events() if isinstance(e, PhaseChanged)]
    assert triggers[-5:] == ["spec_changed", "pods_selected", "load_started", "load_verified", "service_bound"]
    assert world.status()["phase"] == "Running"


async def test_a_missing_secret_fails_the_adapter_until_it_appears_and_its_key_is_sent(world: World) -> None:
    engine = world.add_pod("pod-0")
    world.apply(manifest(replicas=1, apiKeySecretRef={"name": "engine-key", "key": "token"}))
    result = await world.reconcile()
    assert (world.status()["phase"], world.condition("Ready")["reason"]) == ("Failed", "SecretNotFound")
    assert world.condition("Ready")["message"] == "spec.apiKeySecretRef.name: Secret default/engine-key not found"
    assert result.requeue_after is not None and result.requeue_after.total_seconds() == 15
    world.add_secret("engine-key", {"token": "s3cr3t-t0ken"})
    await world.reconcile()
    assert world.status()["phase"] == "Running"
    assert set(engine.keys) == {"s3cr3t-t0ken"}, "every call carried the key"


async def test_a_key_that_cannot_be_a_header_fails_the_adapter_unshown_until_the_secret_is_fixed(world: World) -> None:
    engine = world.add_pod("pod-0")
    oversized = "k" * 5000
    world.add_secret("engine-key", {"api-key": oversized})
    world.apply(manifest(replicas=1, apiKeySecretRef={"name": "engine-key"}))
    result = await world.reconcile()
    ready = world.condition("Ready")
    assert (world.status()["phase"], ready["reason"]) == ("Failed", "SecretInvalid")
    assert ready["message"] == (
        "spec.apiKeySecretRef.key: the value of key 'api-key' of Secret default/engine-key is 5,000 characters "
        "long; a header takes at most 4,096 here"
    )
    assert not engine.keys, "nothing was sent with the key"
    assert result.requeue_after is not None and result.requeue_after.total_seconds() == 15
    world.add_secret("engine-key", {"api-key": "s3cr3t-t0ken"})
    await world.reconcile()
    assert world.status()["phase"] == "Running"


async def test_a_missing_secret_still_takes_a_deleted_pod_out_of_the_instances(world: World) -> None:
    world.add_pod("pod-0")
    world.add_pod("pod-1")
    world.add_secret("engine-key", {"api-key": "k"})
    world.apply(manifest(replicas=2, apiKeySecretRef={"name": "engine-key"}))
    await world.reconcile()
    world.apply(manifest(replicas=2, apiKeySecretRef={"name": "no-such-secret"}))
    world.delete_pod("pod-0")
    await world.reconcile()
    assert world.status()["instances"] == ["pod-1"] and world.status()["phase"] == "Failed"
