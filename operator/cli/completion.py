"""`modeladapter completion bash|zsh|fish`: a shell completion script, generated from the command's own parser.

shtab walks the argparse parser, so every subcommand, flag and `choices` list is completed as `--help` lists
it, and the scripts never fall behind the parser. A script completes the command `modeladapter`, or the name
given (`--prog`, e.g. `kubectl-modeladapter`); install it the way each shell expects:

    source <(modeladapter completion bash)                       # bash, or into ~/.bashrc
    modeladapter completion zsh > "${fpath[1]}/_modeladapter"    # zsh
    modeladapter completion fish > ~/.config/fish/completions/modeladapter.fish
"""

from __future__ import annotations

import argparse
import copy
import re
from typing import Final

import shtab

SHELLS: Final = ("bash", "zsh", "fish")
DEFAULT_PROG: Final = "modeladapter"
_PROG: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Suggested(tuple[str, ...]):
    """`choices` that the completion scripts offer but argparse never enforces: the command checks the value
    itself, so that a wrong one is one line on stderr rather than argparse's usage message."""

    def __contains__(self, value: object) -> bool:
        return True


class CompletionError(ValueError):
    """An unknown shell or a program name no shell function can be named after."""


def completion_script(parser: argparse.ArgumentParser, shell: str, *, prog: str = DEFAULT_PROG) -> str:
    """The completion script for `shell` of the command `prog`, whose parser is `parser`."""
    if shell not in SHELLS:
        raise CompletionError(f"unknown shell {shell!r}; choose one of {', '.join(SHELLS)}")
    if not _PROG.match(prog):
        raise CompletionError(f"--prog: {prog!r} is not a command name (letters, digits, '.', '_', '-')")
    # The parser names itself `kubectl modeladapter` under the plugin's name; a shell completes one word.
    named = copy.copy(parser)
    named.prog = prog
    script: str = shtab.complete(named, shell=shell)
    return script if script.endswith("\n") else script + "\n"


def add_completion_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    completion = commands.add_parser(
        "completion",
        help="print a bash, zsh or fish completion script",
        description="Print a shell completion script for this command. bash: source <(modeladapter completion "
        'bash); zsh: modeladapter completion zsh > "${fpath[1]}/_modeladapter"; fish: modeladapter completion '
        "fish > ~/.config/fish/completions/modeladapter.fish",
    )
    # Checked in completion_script rather than with `choices`, so that a wrong shell is one line, not a usage.
    completion.add_argument("shell", choices=Suggested(SHELLS), metavar="bash|zsh|fish", help="the shell")
    completion.add_argument(
        "--prog",
        default=DEFAULT_PROG,
        help=f"the command to complete (default {DEFAULT_PROG}; e.g. kubectl-modeladapter)",
    )
