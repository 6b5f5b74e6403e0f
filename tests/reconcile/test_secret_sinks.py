"""Whatever an engine echoes of the API key in its errors, in whatever form, reaches no sink of the reconcile:
not the status, not a Kubernetes Event, not the event log, not the operator's log (property-based: generated
keys, echo forms and message lengths)."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeladapter.adapters.masking import FRAGMENT
from modeladapter.adapters.outcomes import EngineRejected
from tests.adapters.test_secret_masking import ECHOES, keys
from tests.e2e.conftest import adapter_manifest as manifest
from tests.reconcile.conftest import make_world
from tests.secret_search import secret_in


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=keys.filter(lambda k: k == k.strip()),
    echo=st.sampled_from(sorted(ECHOES)),
    padding=st.integers(min_value=0, max_value=6000),
)
async def test_no_echo_of_the_key_reaches_any_sink(
    key: str, echo: str, padding: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="modeladapter")
    world, store = await make_world()
    try:
        engine = world.add_pod("pod-0")
        world.add_secret("engine-key", {"api-key": key})
        said = f"load: engine answered HTTP 400: {'x' * padding} token {ECHOES[echo](key)} refused"
        engine.fail("load", EngineRejected(said, status=400), times=20)
        world.apply(manifest(replicas=1, apiKeySecretRef={"name": "engine-key"}))
        await world.reconcile()
        sinks = {
            "status": json.dumps(world.status(), ensure_ascii=False),
            "Kubernetes Events": json.dumps(world.k8s_events(), ensure_ascii=False),
            "the event log": json.dumps([e.model_dump(mode="json") for e in await world.events()], ensure_ascii=False),
            "the operator's log": caplog.text,
        }
        assert "token" in sinks["the event log"], "the error was recorded"
        leaks = {where: found for where, text in sinks.items() if (found := secret_in(key, text, FRAGMENT))}
        assert not leaks, (echo, leaks)
    finally:
        await store.close()
