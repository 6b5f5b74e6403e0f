"""What can go wrong on a simulated engine, and when: faults per request or for the whole pod.

A `Fault` changes how one request is answered: wait first (`delay`), then answer a status of its own
(`status`, e.g. 500, 502, 503, 401) or close the connection without answering (`drop`). A fault with only a
delay lets the request proceed normally afterwards. Faults are queued as rules:
`plan.add(Fault(status=503), route="load", times=2)` hits the next two load requests; `times=None` hits every
matching request until `plan.clear()` (a per-pod fault). Rules are tried in the order they were added.

Connection-level faults of the whole pod (refusing connections, a restart) live on the engine itself, since
they close its listening socket.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from modeladapter.sandbox.engine.vllm_texts import UNAUTHORIZED_BODY, dumps, error_body


class Route(StrEnum):
    """The engine endpoints a fault can target."""

    ANY = "any"
    MODELS = "models"
    LOAD = "load"
    UNLOAD = "unload"
    COMPLETIONS = "completions"
    HEALTH = "health"
    METRICS = "metrics"


@dataclass(frozen=True, slots=True)
class Fault:
    delay: float = 0.0
    """Seconds to wait before answering (or before the other effect)."""
    status: int | None = None
    """Answer this HTTP status instead of handling the request."""
    body: str | None = None
    """The body for `status`; by default what vLLM (or a proxy in front of it) would send for that status."""
    drop: bool = False
    """Close the connection without any answer (the client sees "server disconnected")."""

    def __post_init__(self) -> None:
        if self.delay < 0:
            raise ValueError("a fault's delay cannot be negative")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"{self.status} is not an HTTP status")
        if self.drop and self.status is not None:
            raise ValueError("a fault either drops the connection or answers a status, not both")

    def answer(self) -> tuple[str, str]:
        """The body and content type sent with `status`."""
        assert self.status is not None
        if self.body is not None:
            return self.body, "application/json" if self.body.startswith("{") else "text/plain"
        if self.status == 401:
            return UNAUTHORIZED_BODY, "application/json"
        if self.status in (502, 503, 504):
            # What sits in front of a dead engine (a proxy, a load balancer) answers in plain text.
            return {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}[self.status], "text/plain"
        if self.status >= 500:
            return error_body("EngineCore encountered an issue. See stack trace (above) for the root cause.",
                              "InternalServerError", self.status), "application/json"  # fmt: skip
        return dumps({"error": {"message": "injected fault", "type": "BadRequestError", "param": None,
                                "code": self.status}}), "application/json"  # fmt: skip


@dataclass(slots=True)
class FaultRule:
    fault: Fault
    route: Route
    remaining: int | None
    """How many more matching requests it hits; None for every one until cleared."""


class FaultPlan:
    """The faults still to happen on one engine."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []

    def add(self, fault: Fault, *, route: Route | str = Route.ANY, times: int | None = 1) -> FaultRule:
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for every request until cleared)")
        rule = FaultRule(fault, Route(route), times)
        self._rules.append(rule)
        return rule

    def clear(self) -> None:
        self._rules.clear()

    def __len__(self) -> int:
        return len(self._rules)

    def take(self, route: Route) -> Fault | None:
        """The fault for the next request to `route`, if any, using up one hit of its rule."""
        for rule in self._rules:
            if rule.route in (Route.ANY, route):
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                return rule.fault
        return None
