"""The metric names a PromQL query reads, and the names the operator really exports, for the checks that the
dashboard and the alerts only ask for series that exist."""

from __future__ import annotations

import re

import promql_parser
from prometheus_client.metrics_core import Metric

from modeladapter.operator.controller.controller_metrics import CONTROLLER
from modeladapter.operator.controller.metrics import OperatorMetrics
from modeladapter.operator.controller.settings import OperatorSettings

SAMPLE_SUFFIXES = {
    # What a family of each type puts on the wire (the text format; `_created` only in OpenMetrics).
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "unknown": ("",),
}

GRAFANA_RANGES = re.compile(r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}")
"""Grafana's built-in range variables, which PromQL cannot parse; a real duration stands in for them."""


def sample_names(family: Metric) -> set[str]:
    """The sample names one collected family is exposed under."""
    return {family.name + suffix for suffix in SAMPLE_SUFFIXES[family.type]}


def exported_metric_names() -> frozenset[str]:
    """Every sample name a real operator's `/metrics` can serve: read from its registry, process metrics included."""
    metrics = OperatorMetrics()
    return frozenset(name for family in metrics.registry.collect() for name in sample_names(family))


def selectors(query: str) -> list[promql_parser.VectorSelector]:
    """Every vector selector in `query` (PromQL, with Grafana's range variables allowed); ValueError if it does not parse."""
    found: list[promql_parser.VectorSelector] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(GRAFANA_RANGES.sub("5m", query)), pre_visit=visit)
    return found


def metric_names(query: str) -> set[str]:
    """The metric names `query` selects (PromQL, with Grafana's range variables allowed).

    Raises ValueError for a query that does not parse or a selector whose metric is not one fixed name.
    """
    names: set[str] = set()
    for selector in selectors(query):
        by_matcher = [
            matcher.value
            for matcher in selector.matchers.matchers
            if matcher.name == "__name__" and matcher.op == promql_parser.MatchOp.Equal
        ]
        if selector.name is None and not by_matcher:
            raise ValueError(f"selector without one fixed metric name in {query!r}: {selector.prettify()}")
        names.update([selector.name] if selector.name is not None else by_matcher)
    return names


def misnamed_identities(query: str) -> list[str]:
    """The selectors in `query` that pick the controller, its work queue or its Lease under a name this operator
    does not export them with (`controller` and the queue's `name` are CONTROLLER; the Lease's is the default
    --lease-name)."""
    lease = OperatorSettings(identity="x").lease_name
    wrong = []
    for selector in selectors(query):
        for matcher in selector.matchers.matchers:
            if matcher.name not in ("controller", "name"):
                continue
            expected = lease if selector.name == "leader_election_master_status" else CONTROLLER
            if matcher.op != promql_parser.MatchOp.Equal or matcher.value != expected:
                wrong.append(f'{selector.prettify()}: expected {matcher.name}="{expected}"')
    return wrong
