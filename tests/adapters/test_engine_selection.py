"""Which engine API a pod speaks and where: the runtime sidecar when the operator enables it and the pod has
the container, otherwise the engine label; the port from the adapter's label."""

from __future__ import annotations

import pytest

from modeladapter.adapters.outcomes import InvalidRequest, Unsupported
from modeladapter.adapters.selection import EngineKind, EngineTarget, engine_port, select_engine

VLLM_POD = {"model.aibrix.ai/name": "llama2-7b", "adapter.model.aibrix.ai/enabled": "true"}


def test_a_plain_pod_gets_direct_vllm_on_port_8000() -> None:
    target = select_engine(pod_ip="10.0.0.7", pod_labels=VLLM_POD, container_names=["vllm-openai"])
    assert target == EngineTarget(EngineKind.VLLM, "10.0.0.7", 8000)
    assert target.base_url == "http://10.0.0.7:8000"


@pytest.mark.parametrize("label", ["vllm", "VLLM", " vllm ", ""])
def test_the_vllm_label_or_none_means_vllm(label: str) -> None:
    labels = {**VLLM_POD, "model.aibrix.ai/engine": label}
    assert select_engine(pod_ip="10.0.0.7", pod_labels=labels).kind is EngineKind.VLLM


def test_the_sglang_label_selects_sglang_paths() -> None:
    labels = {**VLLM_POD, "model.aibrix.ai/engine": "sglang"}
    assert select_engine(pod_ip="10.0.0.7", pod_labels=labels).kind is EngineKind.SGLANG


def test_an_unknown_engine_label_is_unsupported_not_silently_vllm() -> None:
    with pytest.raises(Unsupported, match="tensorrt-llm"):
        select_engine(pod_ip="10.0.0.7", pod_labels={"model.aibrix.ai/engine": "tensorrt-llm"})


def test_the_runtime_sidecar_needs_both_the_flag_and_the_container() -> None:
    containers = ["vllm-openai", "aibrix-runtime"]
    with_flag = select_engine(pod_ip="10.0.0.7", container_names=containers, runtime_sidecar_enabled=True)
    assert with_flag == EngineTarget(EngineKind.RUNTIME, "10.0.0.7", 8080)
    assert select_engine(pod_ip="10.0.0.7", container_names=containers).kind is EngineKind.VLLM
    no_container = select_engine(pod_ip="10.0.0.7", container_names=["vllm-openai"], runtime_sidecar_enabled=True)
    assert no_container.kind is EngineKind.VLLM


def test_only_a_container_named_exactly_aibrix_runtime_counts() -> None:
    target = select_engine(pod_ip="10.0.0.7", container_names=["aibrix-runtime-v2"], runtime_sidecar_enabled=True)
    assert target.kind is EngineKind.VLLM


def test_the_sidecar_wins_over_the_engine_label() -> None:
    target = select_engine(
        pod_ip="10.0.0.7", pod_labels={"model.aibrix.ai/engine": "sglang"},
        container_names=["aibrix-runtime"], runtime_sidecar_enabled=True,
    )  # fmt: skip
    assert target.kind is EngineKind.RUNTIME


def test_the_adapter_port_label_moves_the_engine_port_but_not_the_sidecar() -> None:
    labels = {"model.aibrix.ai/port": "8011"}
    assert select_engine(pod_ip="10.0.0.7", adapter_labels=labels).port == 8011
    sidecar = select_engine(pod_ip="10.0.0.7", adapter_labels=labels, container_names=["aibrix-runtime"],
                            runtime_sidecar_enabled=True)  # fmt: skip
    assert sidecar.port == 8080


@pytest.mark.parametrize("raw", ["http", "0", "65536", "-1", "80.5", " 80"])
def test_a_port_label_that_is_not_a_port_is_an_invalid_request(raw: str) -> None:
    with pytest.raises(InvalidRequest, match="model.aibrix.ai/port"):
        engine_port({"model.aibrix.ai/port": raw})


def test_an_empty_port_label_means_the_default() -> None:
    assert engine_port({"model.aibrix.ai/port": ""}) == 8000
    assert engine_port(None) == 8000


@pytest.mark.parametrize("pod_ip", [None, "", "pod-a", "10.0.0.300"])
def test_a_pod_without_a_usable_ip_is_an_invalid_request(pod_ip: str | None) -> None:
    with pytest.raises(InvalidRequest):
        select_engine(pod_ip=pod_ip)


def test_ipv6_pod_addresses_are_bracketed_in_the_url() -> None:
    assert select_engine(pod_ip="fd00::7").base_url == "http://[fd00::7]:8000"
