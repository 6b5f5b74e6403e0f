"""The Dockerfile builds the operator image as the Deployment expects it: python:3.11-slim in two stages, the
package installed (not editable) from this repository, run as a non-root numeric user, `modeladapter run` by
default. No Docker engine exists on the project's machines, so these tests read the Dockerfile; they fail
when it drifts from the project (a mapped folder not copied, a uid the Deployment does not run as)."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from modeladapter.operator.kube.manifests import DEPLOYMENT_FILE

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [argument for instruction, argument in self.instructions if instruction == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def stages() -> list[Stage]:
    """The Dockerfile's stages and their instructions (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    parsed: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, argument = line.partition(" ")
        keyword, argument = keyword.upper(), " ".join(argument.split())
        if keyword == "FROM":
            words = argument.split()
            parsed.append(Stage(words[0], words[2] if len(words) == 3 and words[1].upper() == "AS" else None))
        else:
            assert parsed, f"{keyword} before the first FROM"
            parsed[-1].instructions.append((keyword, argument))
    return parsed


def exec_form(argument: str | None) -> list[str]:
    assert argument is not None and argument.startswith("["), f"use the exec form (JSON array), got {argument!r}"
    value = json.loads(argument)
    assert isinstance(value, list)
    return [str(word) for word in value]


def test_every_stage_is_python_3_11_slim_and_there_are_two() -> None:
    found = stages()
    assert [stage.base for stage in found] == ["python:3.11-slim", "python:3.11-slim"]
    assert found[0].name is not None and found[1].name is None


def test_the_package_is_installed_from_the_repository_not_editable() -> None:
    build = stages()[0]
    installs = [run for run in build.all("RUN") if "pip install" in run]
    assert installs, "the build stage must pip install the package"
    (install,) = installs
    words = shlex.split(install.split("&&")[0])
    assert words[-1] == "." and "-e" not in words and "--editable" not in words
    copied = {word.rstrip("/") for copy in build.all("COPY") for word in shlex.split(copy)[:-1]}
    assert {"pyproject.toml", "README.md"} <= copied


def test_every_mapped_folder_is_copied_into_the_build() -> None:
    """A folder added to pyproject's package-dir but not copied would be missing from the image."""
    mapped = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values()
    copied = {word.rstrip("/") for copy in stages()[0].all("COPY") for word in shlex.split(copy)[:-1]}
    assert set(mapped) <= copied, f"not copied: {sorted(set(mapped) - copied)}"


def test_the_runtime_stage_only_takes_the_built_environment() -> None:
    runtime = stages()[1]
    copies = runtime.all("COPY")
    assert copies and all(copy.startswith("--from=") for copy in copies)


def test_the_image_runs_as_the_non_root_user_the_deployment_expects() -> None:
    user = stages()[1].last("USER")
    assert user is not None
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root uid, so that the kubelet can check runAsNonRoot"
    pod = yaml.safe_load(DEPLOYMENT_FILE.read_text())["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)
    if gid:
        assert pod["securityContext"]["runAsGroup"] == int(gid)


def test_the_image_runs_modeladapter_run_by_default() -> None:
    runtime = stages()[1]
    command = exec_form(runtime.last("ENTRYPOINT")) + exec_form(runtime.last("CMD"))
    assert command == ["modeladapter", "run"]
    assert any("/opt/modeladapter/bin" in env for env in runtime.all("ENV")), "the environment's bin must be on PATH"


@pytest.mark.parametrize("variable", ["PYTHONSAFEPATH=1", "PYTHONUNBUFFERED=1"])
def test_python_never_reads_the_working_directory_and_logs_unbuffered(variable: str) -> None:
    assert any(variable in env.split() for env in stages()[1].all("ENV"))


def test_the_working_directory_is_where_the_deployment_mounts_the_event_log() -> None:
    workdir = stages()[1].last("WORKDIR")
    (container,) = yaml.safe_load(DEPLOYMENT_FILE.read_text())["spec"]["template"]["spec"]["containers"]
    assert workdir in {mount["mountPath"] for mount in container["volumeMounts"]}


def test_the_probe_port_is_exposed() -> None:
    (container,) = yaml.safe_load(DEPLOYMENT_FILE.read_text())["spec"]["template"]["spec"]["containers"]
    assert stages()[1].all("EXPOSE") == [str(container["ports"][0]["containerPort"])]
