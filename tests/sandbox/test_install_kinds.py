"""The kinds an install creates (sandbox/apiserver/install_kinds.py) are stored with kube-apiserver's defaults and
refused, 422 with the field named, when a field kube-apiserver requires is missing or wrong. The bases of
deploy/ themselves apply in tests/deploy/test_install_on_the_emulator.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modeladapter.operator.kube.manifests import operator_manifests
from modeladapter.sandbox.apiserver import ApiError, Store
from modeladapter.sandbox.apiserver.install_kinds import (
    CLUSTER_ROLE_BINDINGS,
    DEPLOYMENTS,
    PERSISTENT_VOLUME_CLAIMS,
    POD_DISRUPTION_BUDGETS,
    ROLES,
)
from modeladapter.sandbox.apiserver.resources import ResourceType

JsonDict = dict[str, Any]
NAMESPACE = "default"


def shipped(kind: str, base: str = "ha-postgresql") -> JsonDict:
    (document,) = [d for d in operator_manifests(base, namespace=NAMESPACE) if d["kind"] == kind]
    return copy.deepcopy(document)


def refused(store: Store, resource: ResourceType, body: JsonDict) -> str:
    with pytest.raises(ApiError) as error:
        store.create(resource, NAMESPACE if resource.namespaced else "", body)
    assert error.value.code == 422
    return error.value.message


def test_a_deployment_is_defaulted_like_kube_apiserver_does() -> None:
    store = Store()
    body = shipped("Deployment")
    del body["spec"]["replicas"], body["spec"]["strategy"]
    created = store.create(DEPLOYMENTS, NAMESPACE, body)
    assert created["spec"]["replicas"] == 1
    assert created["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert created["metadata"]["generation"] == 1


def test_a_deployment_whose_selector_misses_its_template_is_refused() -> None:
    body = shipped("Deployment")
    body["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    assert "`selector` does not match template `labels`" in refused(Store(), DEPLOYMENTS, body)


def test_a_recreate_deployment_with_rolling_update_parameters_is_refused() -> None:
    body = shipped("Deployment")
    body["spec"]["strategy"]["type"] = "Recreate"
    assert "spec.strategy.rollingUpdate: Forbidden" in refused(Store(), DEPLOYMENTS, body)


def test_a_deployment_selector_cannot_change() -> None:
    store = Store()
    created = store.create(DEPLOYMENTS, NAMESPACE, shipped("Deployment"))
    changed = copy.deepcopy(created)
    changed["spec"]["selector"]["matchLabels"]["extra"] = "x"
    changed["spec"]["template"]["metadata"]["labels"]["extra"] = "x"
    with pytest.raises(ApiError) as error:
        store.update(DEPLOYMENTS, NAMESPACE, created["metadata"]["name"], changed)
    assert error.value.code == 422 and "spec.selector: Invalid value" in error.value.message


def test_a_budget_with_both_bounds_is_refused() -> None:
    body = shipped("PodDisruptionBudget")
    body["spec"]["maxUnavailable"] = 1
    assert "minAvailable and maxUnavailable cannot be both set" in refused(Store(), POD_DISRUPTION_BUDGETS, body)


def test_a_claim_needs_an_access_mode_and_a_size_and_starts_pending() -> None:
    store = Store()
    assert store.create(PERSISTENT_VOLUME_CLAIMS, NAMESPACE, shipped("PersistentVolumeClaim", "default"))["status"] == {
        "phase": "Pending"
    }
    body = shipped("PersistentVolumeClaim", "default")
    body["metadata"]["name"] = "empty"
    body["spec"] = {}
    message = refused(store, PERSISTENT_VOLUME_CLAIMS, body)
    assert "spec.accessModes: Required value" in message and "spec.resources[storage]: Required value" in message


def test_a_role_rule_without_verbs_or_groups_is_refused() -> None:
    body = shipped("Role")
    body["rules"] = [{"resources": ["leases"], "verbs": []}]
    message = refused(Store(), ROLES, body)
    assert "rules[0].verbs: Required value" in message and "rules[0].apiGroups: Required value" in message


def test_a_cluster_role_binding_names_a_cluster_role_and_the_service_account_namespace() -> None:
    body = shipped("ClusterRoleBinding")
    body["roleRef"]["kind"] = "Role"
    del body["subjects"][0]["namespace"]
    message = refused(Store(), CLUSTER_ROLE_BINDINGS, body)
    assert 'roleRef.kind: Unsupported value: "Role"' in message and "subjects[0].namespace: Required value" in message
