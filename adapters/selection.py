"""Which engine API a pod speaks, and at which address. Pure: it takes plain values read off the pod.

The rules are AIBrix's (`lora_client.go`, `utils.go`), with the port label this project adds:

* the operator runs with `--enable-runtime-sidecar` and the pod has a container named exactly `aibrix-runtime`
  -> the AIBrix runtime sidecar API at `http://<podIP>:8080`;
* otherwise the pod label `model.aibrix.ai/engine`: `vllm` (also absent or empty) or `sglang`, at
  `http://<podIP>:<port>`, where the port is the adapter's label `model.aibrix.ai/port` (default 8000).

An engine label this operator does not know is `Unsupported` (AIBrix would silently send vLLM calls); a pod
without an IP or a port label that is not a port is an `InvalidRequest`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from modeladapter.adapters.outcomes import InvalidRequest, Unsupported

ENGINE_LABEL: Final = "model.aibrix.ai/engine"
PORT_LABEL: Final = "model.aibrix.ai/port"
RUNTIME_CONTAINER: Final = "aibrix-runtime"
DEFAULT_ENGINE_PORT: Final = 8000
RUNTIME_PORT: Final = 8080


class EngineKind(StrEnum):
    VLLM = "vllm"
    SGLANG = "sglang"
    RUNTIME = "aibrix-runtime"


@dataclass(frozen=True, slots=True)
class EngineTarget:
    """One engine API endpoint of one pod."""

    kind: EngineKind
    host: str
    port: int

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.kind} at {self.base_url}"


def engine_port(adapter_labels: Mapping[str, str] | None) -> int:
    """The engine port from the ModelAdapter's `model.aibrix.ai/port` label, 8000 without it."""
    raw = (adapter_labels or {}).get(PORT_LABEL)
    if raw is None or raw == "":
        return DEFAULT_ENGINE_PORT
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise InvalidRequest(f"label {PORT_LABEL}={raw!r} is not a port number (1-65535)")
    return int(raw)


def select_engine(
    *,
    pod_ip: str | None,
    pod_labels: Mapping[str, str] | None = None,
    container_names: Iterable[str] = (),
    adapter_labels: Mapping[str, str] | None = None,
    runtime_sidecar_enabled: bool = False,
) -> EngineTarget:
    """The engine endpoint to call for one pod (see the module docstring for the rules)."""
    host = _checked_ip(pod_ip)
    if runtime_sidecar_enabled and RUNTIME_CONTAINER in set(container_names):
        return EngineTarget(EngineKind.RUNTIME, host, RUNTIME_PORT)
    port = engine_port(adapter_labels)
    label = (pod_labels or {}).get(ENGINE_LABEL, "").strip().lower()
    if label in ("", EngineKind.VLLM):
        return EngineTarget(EngineKind.VLLM, host, port)
    if label == EngineKind.SGLANG:
        return EngineTarget(EngineKind.SGLANG, host, port)
    raise Unsupported(f"pod label {ENGINE_LABEL}={label!r} names an engine this operator cannot drive (vllm, sglang)")


def _checked_ip(pod_ip: str | None) -> str:
    if not pod_ip:
        raise InvalidRequest("the pod has no IP address yet")
    try:
        return str(ipaddress.ip_address(pod_ip))
    except ValueError:
        raise InvalidRequest(f"pod IP {pod_ip!r} is not an IP address") from None
