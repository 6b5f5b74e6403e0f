"""An engine that echoes the API key in any form leaks none of it: cut short at the end of a long error, URL- or
JSON-encoded, as the base64 of `Bearer KEY`, upper-cased, without its last characters. The operator runs as a
process, logging at DEBUG; every sink is searched for any 10 characters of any key, as they are and inside
base64: the operator's log, `/metrics`, Kubernetes Events, every ModelAdapter, the event log (a full SQL dump)
and what the audit commands print. A key that cannot be a header value is refused as `SecretInvalid`, unshown."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx

from modeladapter.operator.kube.client import SECRETS
from modeladapter.sandbox.engine.faults import Fault
from tests.e2e.conftest import Sandbox, adapter_manifest
from tests.reliability.conftest import open_world
from tests.reliability.test_security import secret
from tests.secret_search import secret_in

SEARCHED = 10
"""Fragments this long are searched for (the mask covers any of 8 or more; 10 keeps chance matches away)."""

ECHOES: dict[str, Callable[[str], str]] = {
    "cut": lambda key: "x" * (4096 - 40) + f" the key {key} was refused",
    "url": lambda key: f"bad token {quote(key, safe='')}",
    "json": lambda key: f"bad token {json.dumps(key)}",
    "bearer64": lambda key: "bad header " + base64.b64encode(f"Bearer {key}".encode()).decode(),
    "upper": lambda key: f"BAD TOKEN {key.upper()}",
    "chopped": lambda key: f"bad token {key[:-3]}",
}


def key_for(form: str) -> str:
    # Punctuation that encodings change, and letters in both cases.
    return f"Sk-{form}/{secrets.token_urlsafe(18)}+Zq="


async def test_no_echo_of_a_key_in_any_form_reaches_any_sink(tmp_path: Path) -> None:
    keys = {form: key_for(form) for form in ECHOES}
    oversized = "K" + secrets.token_hex(2600)
    async with open_world(tmp_path, engines=len(ECHOES)) as sandbox:
        for form, key in keys.items():
            await sandbox.kubelet.create_pod(f"echo-{form}", labels={"pool": f"echo-{form}"})
            engine = sandbox.engine(f"echo-{form}")
            engine.api_key = key
            body = json.dumps({"error": {"message": ECHOES[form](key), "type": "BadRequestError"}})
            engine.inject(Fault(status=400, body=body), route="load", times=None)
            await sandbox.kube.create(SECRETS, "default", secret(f"key-{form}", {"api-key": key}))
        await sandbox.kube.create(SECRETS, "default", secret("oversized", {"api-key": oversized}))
        operator = sandbox.spawn_operator("--log-level", "debug")
        try:
            for form in ECHOES:
                manifest = adapter_manifest(f"echo-{form}", podSelector={"matchLabels": {"pool": f"echo-{form}"}})
                manifest["spec"]["apiKeySecretRef"] = {"name": f"key-{form}"}
                await sandbox.apply(manifest)
            oversized_manifest = adapter_manifest("oversized", podSelector={"matchLabels": {"pool": "echo-url"}})
            oversized_manifest["spec"]["apiKeySecretRef"] = {"name": "oversized"}
            await sandbox.apply(oversized_manifest)
            for form in ECHOES:
                status = await sandbox.phase("Failed", f"echo-{form}", timeout=20)
                ready = {c["type"]: c for c in status["conditions"]}["Ready"]
                assert ready["reason"] == "ModelAdapterLoadingError" and "***" in ready["message"], (form, ready)
            status = await sandbox.phase("Failed", "oversized", timeout=20)
            ready = {c["type"]: c for c in status["conditions"]}["Ready"]
            assert ready["reason"] == "SecretInvalid", ready
            assert ready["message"].startswith("spec.apiKeySecretRef.key: the value of key 'api-key' of Secret")
            async with httpx.AsyncClient() as http:
                metrics = (await http.get(f"http://127.0.0.1:{operator.probe_port}/metrics", timeout=5)).text
        finally:
            await operator.terminate()
        sinks = {
            "the operator's log": operator.log(),
            "/metrics": metrics,
            "Kubernetes Events": json.dumps(sandbox.server.objects("v1", "Event"), ensure_ascii=False),
            "ModelAdapters": json.dumps(
                sandbox.server.objects("model.aibrix.ai/v1alpha1", "ModelAdapter"), ensure_ascii=False
            ),
            "the event log": "\n".join(sqlite3.connect(sandbox.database_url.removeprefix("sqlite:///")).iterdump()),
            **{f"modeladapter {command}": await audit(sandbox, command) for command in ("events", "history")},
        }
    assert "LoadFailed" in sinks["the event log"]
    leaks = [
        f"{form} key ({found!r}) in {where}"
        for where, text in sinks.items()
        for form, key in {**keys, "oversized": oversized[:300]}.items()
        if (found := secret_in(key, text, SEARCHED)) is not None
    ]
    assert not leaks, leaks


async def audit(sandbox: Sandbox, command: str) -> str:
    """What an audit command prints about every adapter (as JSON, so that nothing is shortened for a table)."""
    arguments = [command, "--database-url", sandbox.database_url, "-o", "json"]
    arguments += ["-A"] if command == "events" else ["echo-cut"]
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "modeladapter"),
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode() + err.decode()
