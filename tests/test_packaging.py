"""One distribution, one import namespace, and a repository root that never shadows the standard library.

The design card's folders (`fsm/`, `store/`, `operator/` ...) are mapped to `modeladapter.<folder>`.
`operator/` has no `__init__.py`: as a namespace portion it can never win over the standard library's
`operator` module, even when the repository root is on `sys.path` (as it is for `python -m ...` and
`python -c ...` run from the root).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAPPED = ("fsm", "adapters", "store", "migrations", "operator", "sandbox")
DATA_ONLY = ("deploy",)
"""Mapped folders without Python (the kustomize bases): package data, nothing for mypy to see."""
REINSTALL = "pip install -e '.[dev]'"


def run_from_root(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_the_operator_folder_is_not_a_regular_package() -> None:
    assert (REPO / "operator").is_dir()
    assert not (REPO / "operator" / "__init__.py").exists()


def test_the_standard_library_still_imports_from_the_repository_root() -> None:
    result = run_from_root("-c", "import collections, operator, enum; print(operator.__file__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("operator.py"), result.stdout
    assert str(REPO) not in result.stdout


def test_pytest_collects_from_the_repository_root() -> None:
    result = run_from_root("-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tests collected" in result.stdout or "test collected" in result.stdout


def test_the_console_scripts_are_installed() -> None:
    scripts = Path(sys.executable).parent
    for name in ("modeladapter", "kubectl-modeladapter"):
        assert (scripts / name).exists(), f"{name} is missing; run {REINSTALL}"


def test_every_mapped_folder_is_declared_and_visible_to_mypy() -> None:
    """pyproject maps each folder, and `.typing/modeladapter/<folder>` links to it for the type checker."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    mapping = pyproject["tool"]["setuptools"]["package-dir"]
    assert mapping == {f"modeladapter.{folder}": folder for folder in (*MAPPED, *DATA_ONLY)}
    for folder in MAPPED:
        link = REPO / ".typing" / "modeladapter" / folder
        assert link.is_symlink() and link.resolve() == (REPO / folder).resolve(), f"{link} must link to {folder}/"


def test_every_package_is_listed_so_that_a_wheel_holds_it_all() -> None:
    """setuptools' `packages` is explicit with `package-dir`; a subpackage left out would be missing from a wheel."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for folder in MAPPED:
        for directory in [REPO / folder, *(p for p in (REPO / folder).rglob("*") if p.is_dir())]:
            # A mapped folder is a package even with no module of its own (`operator/` holds only subpackages).
            if "__pycache__" not in directory.parts and (directory == REPO / folder or any(directory.glob("*.py"))):
                found.add(".".join(["modeladapter", folder, *directory.relative_to(REPO / folder).parts]))
    found |= {f"modeladapter.{folder}" for folder in DATA_ONLY}
    assert found == listed, (
        f"missing from pyproject: {sorted(found - listed)}; listed but absent: {sorted(listed - found)}"
    )


@pytest.mark.parametrize("folder", MAPPED)
def test_every_module_is_importable_under_the_namespace_from_this_checkout(folder: str) -> None:
    for path in sorted((REPO / folder).rglob("*.py")):
        relative = path.relative_to(REPO / folder).with_suffix("")
        parts = [p for p in relative.parts if p != "__init__"]
        name = ".".join(["modeladapter", folder, *parts])
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, f"{name} is not installed; run {REINSTALL}"
        assert Path(spec.origin).resolve() == path.resolve(), f"{name} comes from {spec.origin}, not this checkout"
