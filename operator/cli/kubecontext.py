"""The namespace a command works in when `-n` is not given: the kubeconfig context's, as kubectl does.

The kubeconfig is `--kubeconfig`, else every file `$KUBECONFIG` lists, else the sandbox's
`./.modeladapter/kubeconfig` or `~/.kube/config`. A list is merged as kubectl merges it: files that do not exist
are skipped, the first file that sets `current-context` wins, and of two contexts with one name the first
file's wins (so a current-context in one file may name a context in another). The context is `--context` or
that current-context. A context without a namespace, or no kubeconfig at all, means `default` (inside a pod the
caller reads the service account's namespace instead: `incluster.pod_namespace`); a kubeconfig that cannot be
read is an error (`KubeconfigError`: pass `-n`). The files are read as plain YAML rather than through
kubernetes-asyncio, which the commands that only read the event log never load (it is a third of their
start-up time).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import yaml

FALLBACK_NAMESPACE: Final = "default"


class KubeconfigError(ValueError):
    """A kubeconfig that cannot say which namespace to use; the message is one line."""


def listed_kubeconfigs(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The files `$KUBECONFIG` lists, in order (none when it is unset or empty)."""
    environ = os.environ if environ is None else environ
    return [Path(p) for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]


def context_namespace(kubeconfigs: Sequence[Path], context: str | None = None) -> str:
    """The namespace of `context` (default: the current one) in the merged `kubeconfigs`; `default` if none set."""
    documents = [(path, _read(path)) for path in kubeconfigs if path.is_file()]
    where = _describe(kubeconfigs)
    if not documents:
        if context is not None:
            raise KubeconfigError(f"--context {context!r}: there is no kubeconfig at {where}")
        return FALLBACK_NAMESPACE
    current = next((d["current-context"] for _, d in documents if d.get("current-context")), None)
    wanted = context if context is not None else current
    if not wanted:
        return FALLBACK_NAMESPACE
    for _, document in documents:  # the first definition of a name wins, as in kubectl's merge
        for entry in document.get("contexts") or []:
            if isinstance(entry, dict) and entry.get("name") == wanted:
                body = entry.get("context") or {}
                namespace = body.get("namespace") if isinstance(body, dict) else None
                return str(namespace) if namespace else FALLBACK_NAMESPACE
    if context is not None:
        raise KubeconfigError(f"--context: the kubeconfig {where} has no context {context!r}")
    # Guessing `default` here could show another namespace's adapters without a word; kubectl refuses too.
    raise KubeconfigError(
        f"the current-context {wanted!r} of the kubeconfig {where} names no context; pass -n NAMESPACE"
    )


def _read(kubeconfig: Path) -> dict[str, Any]:
    try:
        document: Any = yaml.safe_load(kubeconfig.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise KubeconfigError(f"cannot read the kubeconfig {kubeconfig}: {_first_line(error)}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise KubeconfigError(f"the kubeconfig {kubeconfig} is not a kubeconfig (a YAML mapping)")
    return document


def _describe(kubeconfigs: Sequence[Path]) -> str:
    return os.pathsep.join(str(path) for path in kubeconfigs)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return " ".join(lines[:1]) or type(error).__name__
