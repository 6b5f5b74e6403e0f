"""The Grafana dashboard (deploy/dashboards/modeladapter.json): every query reads only metrics the operator
exports, every panel asks the dashboard's Prometheus data source, the panels tile the grid, and the
kustomization ships it as a ConfigMap Grafana's dashboard sidecar loads."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.metric_names import exported_metric_names, metric_names, misnamed_identities

DASHBOARDS = Path(__file__).resolve().parents[2] / "deploy" / "dashboards"
DASHBOARD = DASHBOARDS / "modeladapter.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
LABEL_VALUES = re.compile(r"^label_values\((?P<query>.+),\s*(?P<label>\w+)\)$")


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def query_panels() -> list[dict[str, Any]]:
    return [panel for panel in all_panels(dashboard()["panels"]) if panel["type"] != "row"]


def query_variables() -> list[dict[str, Any]]:
    return [variable for variable in dashboard()["templating"]["list"] if variable["type"] == "query"]


PANEL_TITLES = [panel["title"] for panel in query_panels()]


def panel(title: str) -> dict[str, Any]:
    return next(panel for panel in query_panels() if panel["title"] == title)


# --- what the queries read -----------------------------------------------------------------------------------


@pytest.mark.parametrize("title", PANEL_TITLES)
def test_every_panel_reads_only_metrics_the_operator_exports(title: str) -> None:
    targets = panel(title)["targets"]
    assert targets, f"panel {title!r} has no query"
    for target in targets:
        read = metric_names(target["expr"])
        assert read, f"panel {title!r} query {target['refId']} reads no metric"
        missing = read - exported_metric_names()
        assert not missing, f"panel {title!r} reads metrics the operator does not export: {sorted(missing)}"


def test_the_panels_pick_the_controller_its_queue_and_the_lease_by_the_names_the_operator_exports() -> None:
    wrong = [
        f"{each['title']}: {problem}"
        for each in query_panels()
        for target in each["targets"]
        for problem in misnamed_identities(target["expr"])
    ]
    assert not wrong


@pytest.mark.parametrize("name", [variable["name"] for variable in query_variables()])
def test_every_variable_lists_label_values_of_an_exported_metric(name: str) -> None:
    variable = next(variable for variable in query_variables() if variable["name"] == name)
    match = LABEL_VALUES.match(variable["query"]["query"])
    assert match, f"variable {name!r}: {variable['query']['query']!r} is not label_values(METRIC, LABEL)"
    assert metric_names(match["query"]) <= exported_metric_names()


def test_the_dashboard_shows_phases_loads_reconciles_the_queue_leadership_the_event_log_and_residency() -> None:
    shown = {name for each in query_panels() for target in each["targets"] for name in metric_names(target["expr"])}
    assert {
        "modeladapter_adapters",
        "modeladapter_phase_transitions_total",
        "modeladapter_load_duration_seconds_count",
        "modeladapter_load_duration_seconds_bucket",
        "controller_runtime_reconcile_time_seconds_bucket",
        "modeladapter_reconcile_errors_total",
        "workqueue_depth",
        "workqueue_queue_duration_seconds_bucket",
        "controller_runtime_active_workers",
        "leader_election_master_status",
        "modeladapter_event_log_writable",
        "modeladapter_event_append_duration_seconds_bucket",
        "modeladapter_adapter_verified",
    } <= shown


# --- how Grafana loads it ------------------------------------------------------------------------------------


def test_every_query_asks_the_data_source_the_dashboard_was_given() -> None:
    variables = {variable["name"]: variable for variable in dashboard()["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    for each in query_panels():
        assert each["datasource"] == DATASOURCE, each["title"]
        assert all(target["datasource"] == DATASOURCE for target in each["targets"]), each["title"]
    assert all(variable["datasource"] == DATASOURCE for variable in query_variables())


def test_the_panels_tile_the_grid_without_overlapping() -> None:
    panels = list(all_panels(dashboard()["panels"]))
    assert len({each["id"] for each in panels}) == len(panels), "panel ids repeat"
    taken: dict[tuple[int, int], str] = {}
    for each in panels:
        grid = each["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, each["title"]
        for cell in (
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        ):
            assert cell not in taken, f"{each['title']!r} overlaps {taken[cell]!r}"
            taken[cell] = each["title"]


def test_the_dashboard_has_a_stable_uid_and_a_current_schema() -> None:
    document = dashboard()
    assert document["uid"] == "modeladapter"
    assert 36 <= document["schemaVersion"] <= 41  # Grafana 9.4 to 11.x


def test_the_kustomization_ships_the_dashboard_as_a_configmap_for_grafanas_sidecar() -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl, (
        "kubectl (with its built-in kustomize) is not on PATH; every machine of this kind has /usr/bin/kubectl"
    )
    rendered = subprocess.run(
        [kubectl, "kustomize", str(DASHBOARDS)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    (configmap,) = yaml.safe_load_all(rendered)
    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"][DASHBOARD.name]) == dashboard()
