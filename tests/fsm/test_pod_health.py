"""A pod may hold an adapter when it is healthy, and get a new one only when it has been stable for a while."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from modeladapter.fsm.health import PodView, assess_pod, stable_since


@pytest.fixture
def pod(epoch: datetime) -> PodView:
    return PodView(
        name="vllm-0",
        ip="10.0.0.7",
        phase="Running",
        ready=True,
        ready_since=epoch - timedelta(seconds=30),
        terminating=False,
    )


def test_a_pod_ready_for_long_enough_is_healthy_and_schedulable(pod: PodView, epoch: datetime) -> None:
    health = assess_pod(pod, now=epoch)
    assert (health.healthy, health.schedulable, health.reason) == (True, True, "")


def test_a_pod_ready_for_less_than_the_stability_window_is_healthy_but_not_schedulable(
    pod: PodView, epoch: datetime
) -> None:
    health = assess_pod(replace(pod, ready_since=epoch - timedelta(seconds=2)), now=epoch)
    assert (health.healthy, health.schedulable) == (True, False)
    assert "Ready for 2.0s, less than 5s" in health.reason


def test_the_stability_window_is_configurable(pod: PodView, epoch: datetime) -> None:
    young = replace(pod, ready_since=epoch - timedelta(seconds=2))
    assert assess_pod(young, now=epoch, stability=timedelta(0)).schedulable
    assert stable_since(young) == epoch + timedelta(seconds=3)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param({"terminating": True}, "is terminating", id="terminating"),
        pytest.param({"ready": False}, "is not Ready", id="not-ready"),
        pytest.param({"phase": "Pending"}, "is Pending, not Running", id="pending"),
        pytest.param({"ip": None}, "has no IP address", id="no-ip"),
    ],
)
def test_an_unhealthy_pod_can_neither_hold_nor_get_an_adapter(
    pod: PodView, epoch: datetime, change: dict[str, object], reason: str
) -> None:
    health = assess_pod(replace(pod, **change), now=epoch)  # type: ignore[arg-type]
    assert (health.healthy, health.schedulable) == (False, False)
    assert reason in health.reason and "vllm-0" in health.reason
