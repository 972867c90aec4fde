"""POST /v1/experiments/{id}/observations/batch (§1 #13): through the official client's
``create_batch`` and raw, on SQLite and PostgreSQL. All of a batch is stored, or none of it."""

from __future__ import annotations

import copy
from typing import Any

import sigopt

from tests.server.conftest import INT_GRID_SPEC, Api, expect_api_error


def _experiment(conn: sigopt.Connection) -> str:
    return str(conn.experiments().create(**copy.deepcopy(INT_GRID_SPEC)).id)


def _observation_count(api: Api, eid: str) -> int:
    return int(api.ok("GET", f"/v1/experiments/{eid}/observations", params={"limit": 0})["count"])


def test_official_client_creates_a_batch(conn: sigopt.Connection, api: Api) -> None:
    eid = _experiment(conn)
    suggestion = conn.experiments(eid).suggestions().create(metadata={"instance_id": "i-0a"})
    batch = [
        {"assignments": {"x": x, "y": 9 - x}, "values": [{"name": "score", "value": x / 10}]}
        for x in range(5)
    ]
    batch.append({"suggestion": suggestion.id, "value": 0.9, "metadata": {"instance_id": "i-0a"}})
    batch.append({"assignments": {"x": 7, "y": 7}, "failed": True, "metadata": {"why": "oom"}})
    page = conn.experiments(eid).observations().create_batch(observations=batch)
    assert page.count == 7
    created = list(page.iterate_pages())
    assert [o.assignments["x"] for o in created[:5]] == [0, 1, 2, 3, 4]
    assert created[5].suggestion == suggestion.id and created[5].values[0].value == 0.9
    assert created[6].failed is True and created[6].metadata["why"] == "oom"
    assert len({o.id for o in created}) == 7
    # Stored, the suggestion closed, and the batch is visible like single creates.
    assert _observation_count(api, eid) == 7
    assert conn.experiments(eid).suggestions(suggestion.id).fetch().state == "closed"
    listed = conn.experiments(eid).observations().fetch()
    assert {o.id for o in listed.iterate_pages()} == {o.id for o in created}


def test_a_bad_item_rejects_the_whole_batch_naming_its_index(
    conn: sigopt.Connection, api: Api
) -> None:
    eid = _experiment(conn)
    good = {"assignments": {"x": 1, "y": 1}, "value": 1.0}
    cases: list[tuple[list[dict[str, Any]], int, str]] = [
        ([good, {"assignments": {"x": 1, "y": 1}}], 400, "observations[1]: Missing required"),
        ([good, good, {"assignments": {"x": 42, "y": 1}, "value": 1}], 400, "observations[2]:"),
        ([{"suggestion": "987654", "value": 1}], 400, "observations[0]: No suggestion: 987654"),
        ([good, {**good, "colour": "red"}], 400, "colour"),
        ([{**good, "value": "high"}], 400, "observations.0.value"),
    ]
    for observations, status, fragment in cases:
        error = expect_api_error(
            status,
            lambda obs=observations: (
                conn.experiments(eid).observations().create_batch(observations=obs)
            ),
        )
        assert fragment in error.to_json()["message"], (fragment, error.to_json())
    assert _observation_count(api, eid) == 0


def test_two_observations_for_one_suggestion_in_a_batch(conn: sigopt.Connection, api: Api) -> None:
    eid = _experiment(conn)
    sid = conn.experiments(eid).suggestions().create().id
    first = {"suggestion": sid, "value": 0.5}
    same = conn.experiments(eid).observations().create_batch(observations=[first, first])
    pair = list(same.iterate_pages())
    assert same.count == 2 and pair[0].id == pair[1].id  # an identical retry
    other = api.post(
        f"/v1/experiments/{eid}/observations/batch",
        json={"observations": [{"suggestion": sid, "value": 0.7}]},
    )
    assert other.status_code == 409 and other.json()["message"].startswith("observations[0]:")
    assert _observation_count(api, eid) == 1


def test_limits_dry_run_and_other_clients(conn: sigopt.Connection, api: Api, server: Any) -> None:
    eid = _experiment(conn)
    path = f"/v1/experiments/{eid}/observations/batch"
    one = {"assignments": {"x": 3, "y": 4}, "value": 0.25}
    empty = api.post(path, json={"observations": []})
    assert empty.status_code == 400 and "observations" in empty.json()["message"]
    too_many = api.post(path, json={"observations": [one] * 2501})
    assert too_many.status_code == 400 and "observations" in too_many.json()["message"]
    missing = api.post(path, json={})
    assert missing.status_code == 400 and "observations" in missing.json()["message"]
    dry = api.ok("POST", path, json={"observations": [one, one], "dry_run": True})
    assert dry["count"] == 2 and [o["id"] for o in dry["data"]] == [None, None]
    assert dry["data"][0]["assignments"] == {"x": 3, "y": 4}
    assert _observation_count(api, eid) == 0
    full = api.ok("POST", path, json={"observations": [one] * 2500, "no_optimize": True})
    assert full["count"] == 2500 and _observation_count(api, eid) == 2500
    stranger = api.post(path, json={"observations": [one]}, auth=("unknown-token", ""))
    assert stranger.status_code == 403
    unknown = api.post(
        f"/v1/experiments/{eid}9999/observations/batch", json={"observations": [one]}
    )
    assert unknown.status_code == 404
    assert _observation_count(api, eid) == 2500
