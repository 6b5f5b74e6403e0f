"""The PrometheusRule (deploy/prometheus/prometheusrule.yaml): promtool accepts it, its unit tests
(deploy/prometheus/tests/alerts-test.yaml) pass with a firing and a quiet case for every alert, every alert
reads only metrics the operator exports, and every alert has its runbook in docs/operations.md."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.metric_names import exported_metric_names, metric_names, misnamed_identities
from tests.promtool import promtool

ROOT = Path(__file__).resolve().parents[2]
RULE = ROOT / "deploy" / "prometheus" / "prometheusrule.yaml"
UNIT_TESTS = ROOT / "deploy" / "prometheus" / "tests" / "alerts-test.yaml"
GUIDE = ROOT / "docs" / "operations.md"


def prometheus_rule() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(RULE.read_text())
    return document


def alerts() -> list[dict[str, Any]]:
    return [rule for group in prometheus_rule()["spec"]["groups"] for rule in group["rules"] if "alert" in rule]


ALERT_NAMES = [alert["alert"] for alert in alerts()]


def by_name(name: str) -> dict[str, Any]:
    return next(alert for alert in alerts() if alert["alert"] == name)


@pytest.fixture
def promtool_workdir(tmp_path: Path) -> Path:
    """A directory with the rule groups as a plain rule file and the unit tests beside it, as they expect."""
    (tmp_path / "modeladapter-rules.yaml").write_text(yaml.safe_dump({"groups": prometheus_rule()["spec"]["groups"]}))
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    return tmp_path


def run_promtool(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(promtool()), *args], cwd=workdir, capture_output=True, text=True, timeout=120)


# --- promtool ------------------------------------------------------------------------------------------------


def test_promtool_accepts_the_rule_groups(promtool_workdir: Path) -> None:
    result = run_promtool(promtool_workdir, "check", "rules", "modeladapter-rules.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    rules = sum(len(group["rules"]) for group in prometheus_rule()["spec"]["groups"])
    assert f"SUCCESS: {rules} rules found" in result.stdout


def test_every_alert_fires_and_stays_quiet_as_its_unit_tests_say(promtool_workdir: Path) -> None:
    result = run_promtool(promtool_workdir, "test", "rules", UNIT_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_every_alert_has_a_firing_case_and_a_quiet_case(alert: str) -> None:
    checks = [
        check
        for case in yaml.safe_load(UNIT_TESTS.read_text())["tests"]
        for check in case.get("alert_rule_test", [])
        if check["alertname"] == alert
    ]
    assert any(check.get("exp_alerts") for check in checks), f"{alert} has no case where it fires"
    assert any(not check.get("exp_alerts") for check in checks), f"{alert} has no case where it stays quiet"


# --- what the alerts read and say ----------------------------------------------------------------------------


def test_the_rule_is_a_prometheusrule_labelled_for_the_operator() -> None:
    rule = prometheus_rule()
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["metadata"]["name"] == "modeladapter-operator"
    assert rule["metadata"]["labels"]["app.kubernetes.io/name"] == "modeladapter"


@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_every_alert_reads_only_metrics_the_operator_exports(alert: str) -> None:
    read = metric_names(by_name(alert)["expr"])
    assert read, f"{alert} reads no metric"
    missing = read - exported_metric_names()
    assert not missing, f"{alert} reads metrics the operator does not export: {sorted(missing)}"


def test_the_alerts_pick_the_controller_and_the_lease_by_the_names_the_operator_exports() -> None:
    wrong = [f"{alert['alert']}: {problem}" for alert in alerts() for problem in misnamed_identities(alert["expr"])]
    assert not wrong


@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook(alert: str) -> None:
    rule = by_name(alert)
    assert rule["labels"]["severity"] in ("warning", "critical")
    assert rule["annotations"]["summary"].strip() and rule["annotations"]["description"].strip()
    assert rule["annotations"]["runbook_url"].endswith(f"docs/operations.md#{alert.lower()}")


def test_the_alerts_that_name_one_adapter_say_which_in_their_summary() -> None:
    per_adapter = [alert for alert in alerts() if "modeladapter_adapter_phase" in metric_names(alert["expr"])]
    assert per_adapter
    for alert in per_adapter:
        assert "{{ $labels.namespace }}/{{ $labels.adapter }}" in alert["annotations"]["summary"], alert["alert"]


def alerts_section() -> str:
    text = GUIDE.read_text()
    match = re.search(r"^## Alerts\n(.*?)(?=^## )", text, flags=re.MULTILINE | re.DOTALL)
    assert match, f"{GUIDE.name} has no '## Alerts' section"
    return match.group(1)


def test_every_alert_has_its_runbook_section_and_a_row_in_the_guide() -> None:
    section = alerts_section()
    runbooks = re.findall(r"^### (\S+)$", section, flags=re.MULTILINE)
    table = re.findall(r"^\| `(\w+)` \| (\w+) \|", section, flags=re.MULTILINE)
    assert runbooks == ALERT_NAMES
    assert table == [(alert, by_name(alert)["labels"]["severity"]) for alert in ALERT_NAMES]
