"""The helpers the dashboard and alert checks rest on: which metric names a query reads, and which names the
operator exports."""

from __future__ import annotations

import pytest

from tests.deploy.metric_names import exported_metric_names, metric_names, misnamed_identities


def test_a_query_reads_the_metric_of_every_selector_inside_functions_aggregations_and_binary_operators() -> None:
    query = (
        "histogram_quantile(0.99, sum by (le) (rate(a_seconds_bucket[$__rate_interval])))"
        ' / on () group_left max(b{job="x"} offset 5m) or absent({__name__="c"}) + max_over_time(d[1h:1m])'
    )
    assert metric_names(query) == {"a_seconds_bucket", "b", "c", "d"}


def test_a_selector_without_one_fixed_metric_name_is_refused() -> None:
    with pytest.raises(ValueError, match="without one fixed metric name"):
        metric_names('sum({__name__=~"modeladapter_.+"})')


def test_a_query_that_is_not_promql_is_refused() -> None:
    with pytest.raises(ValueError):
        metric_names("sum(rate(x[5m])")


def test_the_operator_exports_its_families_under_the_names_on_the_wire() -> None:
    exported = exported_metric_names()
    # A counter, a histogram and gauges: each under the sample names of its type, never the bare family name.
    assert "modeladapter_reconcile_errors_total" in exported and "modeladapter_reconcile_errors" not in exported
    assert {f"modeladapter_load_duration_seconds{suffix}" for suffix in ("_bucket", "_sum", "_count")} <= exported
    assert "modeladapter_load_duration_seconds" not in exported
    assert "modeladapter_event_log_writable" in exported
    assert "process_resident_memory_bytes" in exported


def test_a_selector_naming_another_controller_queue_or_lease_is_reported() -> None:
    assert (
        misnamed_identities(
            'workqueue_depth{name="modeladapter"} + leader_election_master_status{name="modeladapter-operator"}'
        )
        == []
    )
    assert len(misnamed_identities('controller_runtime_active_workers{controller="other"}')) == 1
    assert len(misnamed_identities('leader_election_master_status{name="modeladapter"}')) == 1
    assert len(misnamed_identities('workqueue_depth{name=~"model.*"}')) == 1
