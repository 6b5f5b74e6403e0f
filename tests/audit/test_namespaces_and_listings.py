"""`-n` defaults to the kubeconfig context's namespace, as kubectl's; `-o wide` and `-o name` where kubectl has them.

The produced log holds adapters in `default` and in `team-b` (two stuck there: `waiting`, `broken`). The tests
of kubeconfig lists and of one name in two namespaces write a small log of their own (`_pending_log`).
"""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeladapter import migrations
from modeladapter.fsm.events import PhaseChanged
from modeladapter.fsm.phases import Phase
from modeladapter.operator.cli.kubecontext import context_namespace
from modeladapter.operator.kube.client import MODELADAPTERS, Kube
from modeladapter.store import create_engine
from tests.audit.conftest import ProducedLog, Run, append_events, document, one_line_error


def _with_namespace(source: Path, target: Path, namespace: str | None, *, current: str | None = None) -> Path:
    """A copy of the emulator's kubeconfig whose current context has `namespace` (None: no namespace)."""
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    (context,) = config["contexts"]
    if namespace is None:
        context["context"].pop("namespace", None)
    else:
        context["context"]["namespace"] = namespace
    if current is not None:
        config["current-context"] = current
    target.write_text(yaml.safe_dump(config))
    return target


def _pending_log(directory: Path, adapters: list[tuple[str, str]]) -> str:
    """A SQLite log in which each (namespace, name) of `adapters` was created and is Pending (stuck) since now."""
    database_url = f"sqlite:///{directory}/pending-events.db"

    async def write() -> None:
        engine = create_engine(database_url)
        try:
            await migrations.upgrade(engine)
        finally:
            await engine.dispose()
        created = PhaseChanged(
            from_phase=None, to_phase=Phase.PENDING, trigger="created", reason="created", message="now Pending"
        )
        for namespace, name in adapters:
            await append_events(database_url, f"uid-{namespace}-{name}", [created], namespace=namespace, name=name)

    asyncio.run(write())
    return database_url


def _kubeconfig(path: Path, *, current: str | None = None, contexts: dict[str, str | None] | None = None) -> Path:
    """A kubeconfig file with only a current-context and/or contexts (name: namespace), as a split config has."""
    config: dict[str, Any] = {"apiVersion": "v1", "kind": "Config"}
    if current is not None:
        config["current-context"] = current
    if contexts is not None:
        config["clusters"] = [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}]
        config["users"] = [{"name": "u", "user": {"token": "t"}}]
        config["contexts"] = [
            {"name": name, "context": {"cluster": "c", "user": "u", **({"namespace": ns} if ns else {})}}
            for name, ns in contexts.items()
        ]
    path.write_text(yaml.safe_dump(config))
    return path


def _stuck_names(modeladapter: Run, log: ProducedLog, *argv: str) -> set[tuple[str, str]]:
    found = document(modeladapter, "stuck", "--for", "0s", "--database-url", log.database_url, *argv)
    return {(f["namespace"], f["name"]) for f in found}


class TestTheDefaultNamespace:
    def test_is_the_kubeconfig_context_s(
        self, produced_log: ProducedLog, modeladapter: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        kubeconfig = _with_namespace(produced_log.kubeconfig, tmp_path / "team-b", "team-b")
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        assert _stuck_names(modeladapter, produced_log) == {("team-b", "waiting"), ("team-b", "broken")}
        events = document(modeladapter, "events", "--database-url", produced_log.database_url)
        assert events and {e["namespace"] for e in events} == {"team-b"}

    def test_an_explicit_n_wins(
        self, produced_log: ProducedLog, modeladapter: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("KUBECONFIG", str(_with_namespace(produced_log.kubeconfig, tmp_path / "k", "team-b")))
        assert _stuck_names(modeladapter, produced_log, "-n", "default") == set()

    def test_is_default_when_the_context_has_none(
        self, produced_log: ProducedLog, modeladapter: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("KUBECONFIG", str(_with_namespace(produced_log.kubeconfig, tmp_path / "k", None)))
        events = document(modeladapter, "events", "--database-url", produced_log.database_url)
        assert events and {e["namespace"] for e in events} == {"default"}

    def test_verify_reads_it_from_its_own_kubeconfig_and_context(
        self, produced_log: ProducedLog, modeladapter: Run, tmp_path: Path
    ) -> None:
        kubeconfig = _with_namespace(produced_log.kubeconfig, tmp_path / "k", "team-b")
        result = document(
            modeladapter, "verify", "--kubeconfig", str(kubeconfig), "--database-url", produced_log.database_url
        )
        assert result["in_sync"] is True and result["adapters_checked"] == 2, "team-b's two, not default's four"

    def test_a_current_context_that_names_no_context_is_one_line(
        self, produced_log: ProducedLog, modeladapter: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        kubeconfig = _with_namespace(produced_log.kubeconfig, tmp_path / "k", "team-b", current="gone")
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        error = one_line_error(modeladapter("stats", "--database-url", produced_log.database_url))
        assert "current-context 'gone'" in error and "pass -n NAMESPACE" in error
        assert modeladapter("stats", "-n", "team-b", "--database-url", produced_log.database_url).code == 0


class TestAKubeconfigList:
    """`$KUBECONFIG` lists files that kubectl merges: a current-context in one may name a context in another."""

    def test_a_current_context_in_one_file_and_its_context_in_another_give_its_namespace(
        self, modeladapter: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        url = _pending_log(tmp_path, [("default", "x"), ("team-b", "y")])
        current = _kubeconfig(tmp_path / "current", current="split")
        contexts = _kubeconfig(tmp_path / "contexts", current="other", contexts={"split": "team-b", "other": None})
        monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(current), str(tmp_path / "missing"), str(contexts)]))
        for command in ("events", "stuck", "stats"):
            result = modeladapter(command, *(["--for", "0s"] if command == "stuck" else []), "-o", "json",
                                  "--database-url", url)  # fmt: skip
            assert (result.code, result.err) == (0, ""), (command, result.err)
        assert {e["namespace"] for e in document(modeladapter, "events", "--database-url", url)} == {"team-b"}
        assert [s["name"] for s in document(modeladapter, "stuck", "--for", "0s", "--database-url", url)] == ["y"]

    @pytest.mark.parametrize(
        "listed",
        [
            ["current", "missing", "contexts"],
            ["current", "shadow", "contexts"],
            ["contexts", "current"],
            ["shadow", "contexts"],
            ["bare", "contexts"],
        ],
        ids=":".join,
    )
    def test_the_merge_is_kubectl_s(self, tmp_path: Path, listed: list[str]) -> None:
        kubectl = shutil.which("kubectl")
        assert kubectl, "kubectl is missing: /usr/bin/kubectl comes with the machine (or .ci/prepare/20-kube-apiserver)"
        _kubeconfig(tmp_path / "current", current="split")
        _kubeconfig(tmp_path / "contexts", current="other", contexts={"split": "team-b", "other": "team-c"})
        _kubeconfig(tmp_path / "shadow", contexts={"split": "team-a"})
        _kubeconfig(tmp_path / "bare", current="other", contexts={"other": None})
        files = [tmp_path / name for name in listed]
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            "KUBECONFIG": os.pathsep.join(map(str, files)),
        }
        view = subprocess.run(
            [kubectl, "config", "view", "--minify", "-o", "jsonpath={.contexts[0].context.namespace}"],
            capture_output=True, text=True, env=environment, check=True,
        )  # fmt: skip
        assert context_namespace(files) == (view.stdout or "default")


class TestWideAndName:
    def test_stuck_name_prints_one_line_per_adapter_across_namespaces(self, modeladapter: Run, tmp_path: Path) -> None:
        url = _pending_log(tmp_path, [("team-a", "x"), ("team-b", "x"), ("team-b", "y")])
        result = modeladapter("stuck", "--for", "0s", "-A", "-o", "name", "--database-url", url)
        assert (result.code, result.err) == (0, "")
        assert sorted(result.out.splitlines()) == [
            "modeladapter.model.aibrix.ai/x",
            "modeladapter.model.aibrix.ai/x",
            "modeladapter.model.aibrix.ai/y",
        ], "as kubectl get -A -o name: team-a/x and team-b/x are two objects"

    def test_stuck_name_prints_kubectl_s_resource_names(self, produced_log: ProducedLog, modeladapter: Run) -> None:
        result = modeladapter("stuck", "--for", "0s", "-A", "-o", "name", "--database-url", produced_log.database_url)
        assert result.code == 0 and result.err == ""
        assert sorted(result.out.splitlines()) == [
            "modeladapter.model.aibrix.ai/broken",
            "modeladapter.model.aibrix.ai/waiting",
        ]

    def test_stuck_wide_adds_each_uid(self, produced_log: ProducedLog, modeladapter: Run) -> None:
        url = ("--database-url", produced_log.database_url)
        narrow = modeladapter("stuck", "--for", "0s", "-n", "team-b", *url).out.splitlines()
        wide = modeladapter("stuck", "--for", "0s", "-n", "team-b", "-o", "wide", *url).out.splitlines()
        uids = {f["name"]: f["uid"] for f in document(modeladapter, "stuck", "--for", "0s", "-n", "team-b", *url)}
        assert wide[0].split()[-1] == "UID" and "UID" not in narrow[0]
        assert len(wide) == len(narrow) == 3
        for row in wide[1:]:
            name = row.split()[0].split("/")[1]
            assert row.endswith(uids[name])

    def test_events_wide_adds_the_stream_version_and_position(
        self, produced_log: ProducedLog, modeladapter: Run
    ) -> None:
        url = ("--database-url", produced_log.database_url)
        events = document(modeladapter, "events", "-n", "team-b", *url)
        wide = modeladapter("events", "-n", "team-b", "-o", "wide", *url)
        assert wide.code == 0 and wide.err == ""
        header, *rows = wide.out.splitlines()
        assert header.split()[:6] == ["TIME", "ADAPTER", "TYPE", "UID", "VERSION", "POSITION"]
        assert len(rows) == len(events)
        for row, event in zip(rows, events, strict=True):
            assert row.split()[3:6] == [event["uid"], str(event["version"]), str(event["position"])]

    def test_verify_name_lists_each_drifting_adapter_once(self, produced_log: ProducedLog, modeladapter: Run) -> None:
        argv = ("verify", "-A", "-o", "name", "--kubeconfig", str(produced_log.kubeconfig))
        clean = modeladapter(*argv, "--database-url", produced_log.database_url)
        assert (clean.code, clean.out, clean.err) == (0, "", "")

        async def status(kube: Kube) -> dict[str, Any]:
            return copy.deepcopy((await kube.get(MODELADAPTERS, "team-b", "waiting"))["status"])

        before = produced_log.cluster(status)

        async def write(kube: Kube, value: dict[str, Any]) -> None:
            await kube.patch(MODELADAPTERS, "team-b", "waiting", {"status": value}, subresource="status")

        produced_log.cluster(lambda kube: write(kube, {"phase": "Running", "readyReplicas": 5}))
        try:
            drifting = modeladapter(*argv, "--database-url", produced_log.database_url)
        finally:
            produced_log.cluster(lambda kube: write(kube, before))
        assert (drifting.code, drifting.out, drifting.err) == (1, "modeladapter.model.aibrix.ai/waiting\n", "")

    @pytest.mark.parametrize(
        ("command", "output"), [("stats", "wide"), ("stats", "name"), ("events", "name"), ("history", "wide")]
    )
    def test_a_command_without_the_format_refuses_it_in_one_line(
        self, produced_log: ProducedLog, modeladapter: Run, command: str, output: str
    ) -> None:
        argv = [command, *(["clean"] if command == "history" else []), "-o", output]
        error = one_line_error(modeladapter(*argv, "--database-url", produced_log.database_url))
        assert "-o/--output: must be one of table, json, yaml" in error and repr(output) in error
