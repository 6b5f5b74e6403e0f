"""`modeladapter --version` and `modeladapter completion bash|zsh|fish`, checked in the real shells.

bash is on every machine; zsh and fish are installed by `.ci/prepare/60-shells`, and these tests fail (never
skip) without them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

MODELADAPTER = str(Path(sys.executable).parent / "modeladapter")
SUBCOMMANDS = {
    "run",
    "manifests",
    "sandbox",
    "history",
    "events",
    "replay",
    "verify",
    "stuck",
    "stats",
    "db",
    "completion",
}


def _modeladapter(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MODELADAPTER, *argv], capture_output=True, text=True, timeout=60)


def _shell(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; run .ci/prepare/60-shells from the repository root")
    return found


def _script(shell: str, *extra: str) -> str:
    done = _modeladapter("completion", shell, *extra)
    assert done.returncode == 0 and done.stderr == "", done
    return done.stdout


def _bash_completions(script: Path, *words: str) -> list[str]:
    """COMPREPLY after bash's completion function for the command line `words` (the last one being completed)."""
    line = " ".join(words)
    program = f"""
source {script}
function=$(complete -p {words[0]} | sed -E 's/.* -F ([^ ]+) .*/\\1/')
COMP_WORDS=({" ".join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}
COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}
"$function" {words[0]} {words[-1]!r} {words[-2]!r}
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    done = subprocess.run([_shell("bash"), "-c", program], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return [word.strip() for word in done.stdout.splitlines() if word.strip()]


def test_version_prints_the_installed_version() -> None:
    done = _modeladapter("--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"modeladapter {version('modeladapter')}\n", "")


class TestBash:
    def test_the_subcommands_complete(self, tmp_path: Path) -> None:
        script = tmp_path / "modeladapter.bash"
        script.write_text(_script("bash"))
        assert set(_bash_completions(script, "modeladapter", "")) >= SUBCOMMANDS
        assert sorted(_bash_completions(script, "modeladapter", "st")) == ["stats", "stuck"]

    def test_flags_and_their_values_complete(self, tmp_path: Path) -> None:
        script = tmp_path / "modeladapter.bash"
        script.write_text(_script("bash"))
        assert {"--namespace", "--output", "--all-namespaces", "--for"} <= set(
            _bash_completions(script, "modeladapter", "stuck", "--")
        )
        assert sorted(_bash_completions(script, "modeladapter", "completion", "")) == ["bash", "fish", "zsh"]
        assert set(_bash_completions(script, "modeladapter", "stuck", "-o", "")) == {
            "table", "json", "yaml", "wide", "name",
        }  # fmt: skip
        assert set(_bash_completions(script, "modeladapter", "stats", "-o", "")) == {"table", "json", "yaml"}

    def test_the_kubectl_plugin_s_name_completes_too(self, tmp_path: Path) -> None:
        script = tmp_path / "plugin.bash"
        script.write_text(_script("bash", "--prog", "kubectl-modeladapter"))
        assert set(_bash_completions(script, "kubectl-modeladapter", "")) >= SUBCOMMANDS


def test_the_zsh_script_parses_and_names_every_subcommand() -> None:
    script = _script("zsh")
    done = subprocess.run([_shell("zsh"), "-n"], input=script, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert script.startswith("#compdef modeladapter")
    assert all(f"    {command}:'" in script for command in SUBCOMMANDS), "each subcommand, with its help"


def test_fish_completes_the_subcommands_and_flags(tmp_path: Path) -> None:
    script = tmp_path / "modeladapter.fish"
    script.write_text(_script("fish"))
    fish = _shell("fish")
    assert subprocess.run([fish, "-n", str(script)], capture_output=True, timeout=30).returncode == 0

    def complete(line: str) -> set[str]:
        program = f"source {script}; complete -C '{line}'"
        done = subprocess.run([fish, "-c", program], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return {row.split("\t")[0] for row in done.stdout.splitlines()}

    assert complete("modeladapter ") >= SUBCOMMANDS
    assert complete("modeladapter st") == {"stats", "stuck"}
    assert {"--namespace", "--output", "--for"} <= complete("modeladapter stuck --")


@pytest.mark.parametrize("argv", [("completion", "tcsh"), ("completion", "bash", "--prog", "two words")])
def test_an_unknown_shell_or_program_name_is_one_line_and_status_2(argv: tuple[str, ...]) -> None:
    done = _modeladapter(*argv)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("modeladapter completion: ")
