"""What `status` shows of an update: each pod's artifact, and the `Progressing` condition."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from modeladapter.fsm.phases import Phase, PlacementState
from modeladapter.fsm.state import AdapterState, Placement, Rollout
from modeladapter.operator.api.status import MAX_SHOWN_URL, StatusDocument, project_status

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def loaded(pod: str, artifact: str) -> Placement:
    return Placement(pod=pod, state=PlacementState.LOADED, since=NOW - timedelta(minutes=1), artifact_url=artifact)


def project(state: AdapterState) -> StatusDocument:
    return project_status(
        state, namespace="default", name="a", generation=2, candidates=2, desired=2, current={}, now=NOW
    )


def test_each_placement_shows_the_artifact_it_serves() -> None:
    status = project(AdapterState(phase=Phase.RUNNING, placements=(loaded("p", "/v1"), loaded("q", "/v2"))))
    assert [(p["pod"], p["artifactURL"]) for p in status["placements"]] == [("p", "/v1"), ("q", "/v2")]


def test_a_huge_artifact_url_is_cut_in_the_status_so_the_object_stays_under_the_api_limit() -> None:
    huge = "/models/" + "y" * 3_000_000
    (shown,) = project(AdapterState(placements=(loaded("p", huge),)))["placements"]
    assert len(shown["artifactURL"]) == MAX_SHOWN_URL and shown["artifactURL"].endswith("(cut short)")


def test_progressing_appears_with_the_first_update_and_says_where_it_stands() -> None:
    assert not any(c["type"] == "Progressing" for c in project(AdapterState())["conditions"])
    rollout = Rollout(to_artifact="/v2", from_artifacts=("/v1",), started_at=NOW, max_unavailable=1, max_surge=1)
    state = AdapterState(phase=Phase.RUNNING, placements=(loaded("p", "/v1"), loaded("q", "/v2")), rollout=rollout)
    (progressing,) = [c for c in project(state)["conditions"] if c["type"] == "Progressing"]
    assert (progressing["status"], progressing["reason"]) == ("True", "RollingUpdate")
    assert progressing["message"] == "updating to /v2: 1 of 2 instances updated"
    halted = replace(state, rollout=replace(rollout, halted_on="p", halted_error="ArtifactNotFound: gone"))
    (progressing,) = [c for c in project(halted)["conditions"] if c["type"] == "Progressing"]
    assert (progressing["status"], progressing["reason"]) == ("False", "UpdateFailed")
    assert "failed on pod p: ArtifactNotFound: gone" in progressing["message"]
