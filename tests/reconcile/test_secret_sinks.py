"""Whatever an engine echoes of the API key in its errors, in whatever form, reaches no sink of the reconcile:
not the status, not a Kubernetes Event, not the event log, not the operator's log (property-based: generated
keys, echo forms and message lengths)."""

from __future__ import annotations

import json
import logging
import secrets
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeladapter.adapters.connections import api_key_problem
from modeladapter.adapters.masking import FRAGMENT
from modeladapter.adapters.outcomes import EngineRejected
from tests.adapters.test_secret_masking import ECHOES
from tests.e2e.conftest import adapter_manifest as manifest
from tests.reconcile.conftest import make_world
from tests.secret_search import decoded_base64_runs

CORE = secrets.token_hex(8)
"""The random middle of every generated key: a leak is a fragment of the key that holds part of it, so that a
key hypothesis builds from words the operator writes anyway (`reconsider_at`) is no false alarm."""
around = st.text(alphabet=string.ascii_letters + string.digits + string.punctuation + " ", max_size=24)
keys = st.builds(lambda before, after: before + CORE + after, around, around).filter(
    lambda k: k == k.strip() and api_key_problem(k) is None
)


def leaked(key: str, text: str) -> str | None:
    """A fragment of `key` of `FRAGMENT` characters holding at least half its length of `CORE`, found in
    `text` as written (any ASCII case) or base64-decoded."""
    core = key.index(CORE)
    searched = [text.lower(), decoded_base64_runs(text).lower()]
    for start in range(len(key) - FRAGMENT + 1):
        overlap = min(start + FRAGMENT, core + len(CORE)) - max(start, core)
        fragment = key[start : start + FRAGMENT].lower()
        if overlap >= FRAGMENT // 2 and any(fragment in place for place in searched):
            return key[start : start + FRAGMENT]
    return None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=keys, echo=st.sampled_from(sorted(ECHOES)), padding=st.integers(min_value=0, max_value=6000))
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
        leaks = {where: found for where, text in sinks.items() if (found := leaked(key, text))}
        assert not leaks, (echo, leaks)
    finally:
        await store.close()
