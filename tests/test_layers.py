"""The layer rules of DESIGN §2, checked on the source: a pure core, I/O at the edges, one import namespace.

* `fsm` imports no I/O library and reads no clock;
* `store` imports only `fsm` among our packages; `adapters` and `store` never import each other;
* only `operator` and `sandbox` know Kubernetes (`kubernetes_asyncio`);
* `sandbox` may import `operator`, never the reverse, except in the CLI (`operator/cli/main.py`, the composition root);
* every import of our code goes through `modeladapter.`, never a bare folder name or a relative import.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("fsm", "adapters", "store", "migrations", "operator", "sandbox")

FSM_FORBIDDEN = {
    "asyncio", "socket", "ssl", "subprocess", "os", "pathlib", "io", "time", "threading", "urllib",
    "httpx", "aiohttp", "requests", "sqlalchemy", "alembic", "aiosqlite", "asyncpg", "kubernetes_asyncio",
}  # fmt: skip
CLOCK_READS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "time_ns"}
ALLOWED_INTERNAL = {
    "fsm": {"fsm"},
    "store": {"fsm", "store"},
    "adapters": {"fsm", "adapters"},
    "migrations": {"fsm", "store", "migrations"},
    "operator": {"fsm", "store", "adapters", "migrations", "operator"},
    "sandbox": {"fsm", "store", "adapters", "migrations", "operator", "sandbox"},
}
KUBERNETES_LAYERS = {"operator", "sandbox"}
# The CLI is the composition root: `modeladapter sandbox` wires the sandbox to the operator, so operator/cli/main.py
# (and nothing else in operator) may import the sandbox; it does so lazily, inside that command's dispatch.
COMPOSITION_ROOT = {"operator/cli/main.py": {"sandbox"}}


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
        elif isinstance(node, ast.ImportFrom) and node.module == "modeladapter" and not node.level:
            # `from modeladapter import migrations` imports modeladapter.migrations.
            for alias in node.names:
                yield node.lineno, f"modeladapter.{alias.name}", 0
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, node.module or "", node.level


def all_modules() -> list[tuple[str, Path]]:
    return [(layer, path) for layer in LAYERS for path in modules(layer)]


def ids(cases: list[tuple[str, Path]]) -> list[str]:
    return [str(path.relative_to(REPO)) for _, path in cases]


@pytest.mark.parametrize(("layer", "path"), all_modules(), ids=ids(all_modules()))
def test_imports_go_through_the_namespace_and_respect_the_layers(layer: str, path: Path) -> None:
    problems = []
    for line, module, level in imports(path):
        top = module.split(".")[0]
        where = f"{path.relative_to(REPO)}:{line}"
        if level:
            problems.append(f"{where}: relative import; import through modeladapter.{layer} instead")
        elif top in LAYERS:
            problems.append(f"{where}: bare `{module}`; import modeladapter.{module} instead")
        elif top == "modeladapter":
            parts = module.split(".")
            target = parts[1] if len(parts) > 1 else ""
            allowed = ALLOWED_INTERNAL[layer] | COMPOSITION_ROOT.get(path.relative_to(REPO).as_posix(), set())
            if target not in allowed:
                problems.append(f"{where}: {layer} must not import modeladapter.{target}")
        elif top == "kubernetes_asyncio" and layer not in KUBERNETES_LAYERS:
            problems.append(f"{where}: only operator and sandbox may talk to Kubernetes")
        if layer == "fsm" and top in FSM_FORBIDDEN:
            problems.append(f"{where}: fsm is pure and must not import {top}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", list(modules("fsm")), ids=lambda p: p.name)
def test_the_core_reads_no_clock(path: Path) -> None:
    calls = [
        f"{path.name}:{node.lineno}: .{node.func.attr}()"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CLOCK_READS
    ]
    assert not calls, "time must come in through Facts:\n" + "\n".join(calls)


def test_the_rules_see_every_layer_that_exists() -> None:
    folders = [p for p in REPO.iterdir() if p.is_dir() and not p.name.startswith(".") and any(p.rglob("*.py"))]
    present = {p.name for p in folders} - {"tests", "benchmarks", "build", "docs"}
    assert present <= set(LAYERS), f"a new top-level code folder needs layer rules: {present - set(LAYERS)}"
