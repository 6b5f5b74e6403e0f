"""What the operator needs to know about a pod, read out of the raw object. Pure.

* health and stability for `modeladapter.fsm.health` (Ready and since when, terminating, phase, IP);
* labels, for selectors and the engine kind (`model.aibrix.ai/engine`);
* container names, for the AIBrix runtime sidecar;
* capacity: the `adapter.model.aibrix.ai/capacity` annotation, else the engine's `--max-cpu-loras` (vLLM keeps
  that many adapters and evicts beyond it), else its `--max-loras` (what `--max-cpu-loras` defaults to), else
  unlimited.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from modeladapter.fsm.health import PodView

CAPACITY_ANNOTATION: Final = "adapter.model.aibrix.ai/capacity"
CAPACITY_FLAGS: Final = ("--max-cpu-loras", "--max-loras")


@dataclass(frozen=True, slots=True)
class ObservedPod:
    uid: str
    namespace: str
    labels: Mapping[str, str]
    containers: tuple[str, ...]
    view: PodView

    @property
    def name(self) -> str:
        return self.view.name

    @property
    def ip(self) -> str | None:
        return self.view.ip


def observe_pod(raw: Mapping[str, Any]) -> ObservedPod:
    metadata = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    ready, ready_since = False, None
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            ready = condition.get("status") == "True"
            ready_since = _parse_time(condition.get("lastTransitionTime")) if ready else None
    containers = spec.get("containers") or []
    return ObservedPod(
        uid=str(metadata.get("uid", "")),
        namespace=str(metadata.get("namespace", "")),
        labels={str(k): str(v) for k, v in (metadata.get("labels") or {}).items()},
        containers=tuple(str(c.get("name", "")) for c in containers),
        view=PodView(
            name=str(metadata.get("name", "")),
            ip=status.get("podIP") or None,
            phase=str(status.get("phase") or "Pending"),
            ready=ready,
            ready_since=ready_since,
            terminating=bool(metadata.get("deletionTimestamp")),
            capacity=capacity_of(metadata.get("annotations") or {}, containers),
        ),
    )


def capacity_of(annotations: Mapping[str, Any], containers: Sequence[Mapping[str, Any]]) -> int | None:
    declared = annotations.get(CAPACITY_ANNOTATION)
    if declared is not None:
        try:
            return max(int(str(declared)), 0)
        except ValueError:
            pass  # an unreadable annotation falls back to what the engine was started with
    for flag in CAPACITY_FLAGS:
        for container in containers:
            value = _flag_value(_tokens(container), flag)
            if value is not None:
                return value
    return None


def _tokens(container: Mapping[str, Any]) -> list[str]:
    tokens: list[str] = []
    for part in [*(container.get("command") or []), *(container.get("args") or [])]:
        try:
            tokens.extend(shlex.split(str(part)))
        except ValueError:
            tokens.append(str(part))
    return tokens


def _flag_value(tokens: list[str], flag: str) -> int | None:
    for index, token in enumerate(tokens):
        raw = None
        if token == flag and index + 1 < len(tokens):
            raw = tokens[index + 1]
        elif token.startswith(flag + "="):
            raw = token.split("=", 1)[1]
        if raw is not None and raw.isdigit():
            return int(raw)
    return None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
