"""GET /v1/experiments/{id}/best_practices (§1 #20) on SQLite and PostgreSQL: each check fires
on the state that should trigger it, and only then."""

from __future__ import annotations

from typing import Any

from tests.server.conftest import INT_GRID_SPEC, Api


def _experiment(api: Api, **changes: Any) -> str:
    spec = {**INT_GRID_SPEC, **changes}
    spec = {k: v for k, v in spec.items() if v is not None}
    return str(api.ok("POST", "/v1/experiments", json=spec)["id"])


def _violations(api: Api, eid: str) -> list[str]:
    body = api.ok("GET", f"/v1/experiments/{eid}/best_practices")
    assert body["object"] == "best_practices"
    return list(body["violations"])


def _open_suggestions(api: Api, eid: str, count: int) -> None:
    for n in range(count):
        given = {"assignments": {"x": n, "y": n}}
        api.ok("POST", f"/v1/experiments/{eid}/suggestions", json=given)


def test_a_sound_experiment_has_no_violations(api: Api) -> None:
    eid = _experiment(api)  # budget 100 for 2 parameters, bandwidth 32
    _open_suggestions(api, eid, 3)
    assert _violations(api, eid) == []


def test_open_suggestions_beyond_parallel_bandwidth(api: Api) -> None:
    eid = _experiment(api, parallel_bandwidth=2)
    _open_suggestions(api, eid, 2)
    assert _violations(api, eid) == []
    _open_suggestions(api, eid, 1)
    [message] = _violations(api, eid)
    assert message.startswith("number of open suggestions (3) exceeds parallel_bandwidth (2)")


def test_unset_bandwidth_and_budget(api: Api) -> None:
    eid = _experiment(api, parallel_bandwidth=None, observation_budget=None)
    assert _violations(api, eid) == ["observation_budget is not set - workers stop at the budget"]
    _open_suggestions(api, eid, 2)
    first = _violations(api, eid)[0]
    assert first.startswith("parallel_bandwidth is not set but 2 suggestions are open")


def test_small_budget_names_the_recommendation(api: Api) -> None:
    eid = _experiment(api, observation_budget=15)
    assert _violations(api, eid) == [
        "observation_budget (15) is below 10 per parameter (20 for 2 parameters)"
    ]


def test_mostly_failing_observations(api: Api) -> None:
    eid = _experiment(api)
    path = f"/v1/experiments/{eid}/observations"
    for n in range(10):
        body: dict[str, Any] = {"assignments": {"x": n % 10, "y": n // 10}}
        body.update({"failed": True} if n < 5 else {"value": float(n)})
        api.ok("POST", path, json=body)
    assert _violations(api, eid) == []  # half failed: not more than half
    api.ok("POST", path, json={"assignments": {"x": 1, "y": 5}, "failed": True})
    [message] = _violations(api, eid)
    assert message.startswith("6 of 11 observations failed")


def test_unknown_and_foreign_experiments(api: Api) -> None:
    eid = _experiment(api)
    assert api.get(f"/v1/experiments/{eid}9999/best_practices").status_code == 404
    stranger = api.get(f"/v1/experiments/{eid}/best_practices", auth=("nobody", ""))
    assert stranger.status_code == 403
