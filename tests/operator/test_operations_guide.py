"""docs/operations.md stays true to the code: every setting with its flag, variable and default, every metric,
and every RBAC rule is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modeladapter.operator.controller.metrics import OperatorMetrics
from modeladapter.operator.controller.settings import OPTIONS, OperatorSettings, env_var, flag
from modeladapter.operator.kube.manifests import operator_manifests

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def table_rows(heading_row_start: str) -> list[list[str]]:
    """The cells of the Markdown table whose header row starts with `heading_row_start`."""
    lines = GUIDE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading_row_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


@pytest.mark.parametrize("setting", [option.setting for option in OPTIONS])
def test_every_setting_is_in_the_settings_table_with_its_default(setting: str) -> None:
    rows = {row[1].strip("`"): row for row in table_rows("| flag | environment variable |")}
    assert env_var(setting) in rows, f"{env_var(setting)} is missing from {GUIDE.name}"
    row = rows[env_var(setting)]
    assert flag(setting).removeprefix("--") in row[0]
    default = getattr(OperatorSettings(identity="x"), setting)
    if setting not in (
        "kubeconfig",
        "namespace",
        "lease_namespace",
        "identity",
        "enable_runtime_sidecar",
        "leader_election",
        "http_route_parent",
    ):
        shown = f"{default:g}" if isinstance(default, float) else str(default)
        assert f"`{shown}`" in row[2], f"{setting}: the guide says {row[2]!r}, the code {shown!r}"


def test_every_setting_in_the_table_exists() -> None:
    documented = {row[1].strip("`") for row in table_rows("| flag | environment variable |")}
    assert documented == {env_var(option.setting) for option in OPTIONS}


def test_every_metric_is_in_the_metrics_table() -> None:
    documented = {row[0].strip("`") for row in table_rows("| metric | type | labels | what |")}
    ours = {family.name for family in OperatorMetrics(process_metrics=False).registry.collect()}
    # prometheus-client names a counter family without its `_total` suffix.
    assert {name if name + "_total" not in documented else name + "_total" for name in ours} == documented


def test_every_rbac_rule_is_explained() -> None:
    documented = set()
    for group, resource, verbs, _why in table_rows("| API group | resource | verbs | why |"):
        group = "" if group == "core" else group.strip("`")
        documented.add((group, resource.split()[0].strip("`"), frozenset(verbs.replace(" ", "").split(","))))
    granted = set()
    for role in (d for d in operator_manifests() if d["kind"] in ("ClusterRole", "Role")):
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    granted.add((group, resource, frozenset(rule["verbs"])))
    assert documented == granted
