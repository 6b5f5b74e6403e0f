"""The architecture's rules, checked on the source (DESIGN §2): a pure core, I/O at the edges, parts that
import only downwards, one import namespace, modules that do one job.

The import rules are import-linter contracts in `pyproject.toml` (`[tool.importlinter]`): `fsm` imports nothing
of ours and no I/O library; `store` knows only `fsm`; only `operator` and `sandbox` talk to Kubernetes; inside
`operator/`, `cli > controller > reconcile | audit > kube > api`, so the audit commands never import the
reconcile or the controller, and the reconcile never imports the controller runtime or the CLI. This file runs
them, and checks what import-linter cannot: that `fsm` reads no clock, that every import goes through
`modeladapter.`, and that no module of `operator/` passes 500 lines.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("fsm", "adapters", "store", "migrations", "operator", "sandbox")
OPERATOR_PARTS = ("api", "kube", "reconcile", "audit", "controller", "cli")
CLOCK_READS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "time_ns"}
MAX_MODULE_LINES = 500


def modules(layer: str) -> Iterator[Path]:
    folder = REPO / layer
    if folder.is_dir():
        yield from sorted(folder.rglob("*.py"))


def imports(path: Path) -> Iterator[tuple[int, str, int]]:
    """(line, imported module, relative level) for every import statement."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, 0
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, node.module or "", node.level


def all_modules() -> list[tuple[str, Path]]:
    return [(layer, path) for layer in LAYERS for path in modules(layer)]


def ids(cases: list[tuple[str, Path]]) -> list[str]:
    return [str(path.relative_to(REPO)) for _, path in cases]


def test_the_import_contracts_hold() -> None:
    """import-linter reads the package as mypy does, through `.typing/` (the editable install hides it)."""
    environment = {**os.environ, "PYTHONPATH": str(REPO / ".typing")}
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=REPO, env=environment, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_contracts_name_every_layer_and_every_part_of_the_operator() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert set(config["root_packages"]) == {f"modeladapter.{layer}" for layer in LAYERS}
    layered = next(c for c in config["contracts"] if c["type"] == "layers")
    named = {part.strip() for layer in layered["layers"] for part in layer.split("|")}
    assert named == {f"modeladapter.operator.{part}" for part in OPERATOR_PARTS}
    present = {p.name for p in (REPO / "operator").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert present == set(OPERATOR_PARTS), "a new part of operator/ needs a place in the layers contract"


@pytest.mark.parametrize(("layer", "path"), all_modules(), ids=ids(all_modules()))
def test_imports_go_through_the_namespace(layer: str, path: Path) -> None:
    problems = []
    for line, module, level in imports(path):
        where = f"{path.relative_to(REPO)}:{line}"
        if level:
            problems.append(f"{where}: relative import; import through modeladapter.{layer} instead")
        elif module.split(".")[0] in LAYERS:
            problems.append(f"{where}: bare `{module}`; import modeladapter.{module} instead")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", list(modules("fsm")), ids=lambda p: p.name)
def test_the_core_reads_no_clock(path: Path) -> None:
    calls = [
        f"{path.name}:{node.lineno}: .{node.func.attr}()"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CLOCK_READS
    ]
    assert not calls, "time must come in through Facts or the Observation:\n" + "\n".join(calls)


def test_no_module_of_the_operator_passes_500_lines() -> None:
    long = {
        str(path.relative_to(REPO)): length
        for path in modules("operator")
        if (length := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"split these before adding more: {long}"


def test_the_operator_folder_has_no_init_so_it_never_shadows_the_standard_library() -> None:
    assert not (REPO / "operator" / "__init__.py").exists()


def test_the_rules_see_every_layer_that_exists() -> None:
    folders = [p for p in REPO.iterdir() if p.is_dir() and not p.name.startswith(".") and any(p.rglob("*.py"))]
    present = {p.name for p in folders} - {"tests", "benchmarks", "build", "docs"}
    assert present <= set(LAYERS), f"a new top-level code folder needs layer rules: {present - set(LAYERS)}"
