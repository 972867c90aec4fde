"""GET /experiments/{id}/stopping_criteria as the open-source SigOpt server answers it (SQLite
and PostgreSQL): the budget strictly exceeded, stagnation on hand-built sequences, the official
client's fetch."""

from __future__ import annotations

import math
import random
from typing import Any

import sigopt

from suggestion_server.domain.stopping_criteria import _front, stopping_reasons
from tests.server.conftest import Api, expect_api_error

ONE_PARAMETER = [{"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}}]  # D = 5


def _experiment(api: Api, **spec: Any) -> str:
    body = {"name": "stopping", "parameters": ONE_PARAMETER, **spec}
    return str(api.ok("POST", "/v1/experiments", json=body)["id"])


def _observe(api: Api, eid: str, *values: float | None, metric: str | None = None) -> None:
    """One observation per value (None: a failed one), in order."""
    for n, value in enumerate(values):
        body: dict[str, Any] = {"assignments": {"x": (n % 97) / 97}}
        if value is None:
            body["failed"] = True
        else:
            body["values"] = [{"name": metric, "value": value}] if metric else [{"value": value}]
        api.ok("POST", f"/v1/experiments/{eid}/observations", json=body)


def _criteria(api: Api, eid: str) -> dict[str, Any]:
    result: dict[str, Any] = api.ok("GET", f"/v1/experiments/{eid}/stopping_criteria")
    assert result["object"] == "stopping_criteria"
    assert result["should_stop"] == bool(result["reasons"])
    return result


def test_budget_is_reached_only_when_exceeded(api: Api) -> None:
    eid = _experiment(api, observation_budget=5)
    assert _criteria(api, eid)["reasons"] == []
    _observe(api, eid, 1.0, 2.0, None, 4.0, 5.0)  # five, a failed one among them: equal
    assert _criteria(api, eid) == {
        "object": "stopping_criteria",
        "should_stop": False,
        "reasons": [],
    }
    _observe(api, eid, None)  # six: more than the budget
    assert _criteria(api, eid)["reasons"] == ["observation_budget_reached"]
    last = api.ok("GET", f"/v1/experiments/{eid}/observations", params={"limit": 1})["data"][0]
    api.ok("DELETE", f"/v1/experiments/{eid}/observations/{last['id']}")
    assert _criteria(api, eid)["reasons"] == []  # deleted ones do not count


def test_stagnation_on_hand_built_sequences(api: Api) -> None:
    eid = _experiment(api)
    _observe(api, eid, 0, 1, 2, 3, 4, -1, -1, -1, -1)
    assert _criteria(api, eid)["reasons"] == []  # 9 < D + 5
    _observe(api, eid, -1)
    # The 5th best of the first 5 (0) is at least the best of the last D = 5 (-1).
    assert _criteria(api, eid)["reasons"] == ["possible_stagnation"]
    _observe(api, eid, 5)
    assert _criteria(api, eid)["reasons"] == []  # the last 5 beat them
    _observe(api, eid, 0, 0, 0, 0)
    assert _criteria(api, eid)["reasons"] == []  # 5 is still among the last 5
    _observe(api, eid, 0)
    # Before the last 5: 0,1,2,3,4,-1 x4,5 -> 5th best is 1 >= 0.
    assert _criteria(api, eid)["reasons"] == ["possible_stagnation"]


def test_stagnation_with_both_reasons_in_order(api: Api) -> None:
    eid = _experiment(api, observation_budget=9)
    _observe(api, eid, 9, 8, 7, 6, 5, 1, 1, 1, 1, 1)
    assert _criteria(api, eid)["reasons"] == ["possible_stagnation", "observation_budget_reached"]


def test_minimized_metrics_are_negated_and_failures_are_worst(api: Api) -> None:
    minimized = {"metrics": [{"name": "loss", "objective": "minimize"}]}
    eid = _experiment(api, **minimized)
    _observe(api, eid, 0, 1, 2, 3, 4, 10, 10, 10, 10, 10, metric="loss")
    assert _criteria(api, eid)["reasons"] == ["possible_stagnation"]
    improving = _experiment(api, **minimized)
    _observe(api, improving, 4, 3, 2, 1, 0, -1, -2, -3, -4, -5, metric="loss")
    assert _criteria(api, improving)["reasons"] == []
    failed_first = _experiment(api)
    _observe(api, failed_first, None, None, None, None, None, -7, -7, -7, -7, -7)
    assert _criteria(api, failed_first)["reasons"] == []  # -inf never beats a value
    failed_last = _experiment(api)
    _observe(api, failed_last, 0, 1, 2, 3, 4, None, None, None, None, None)
    assert _criteria(api, failed_last)["reasons"] == ["possible_stagnation"]


def test_lookback_grows_with_the_parameters(api: Api) -> None:
    two = [*ONE_PARAMETER, {"name": "y", "type": "int", "bounds": {"min": 0, "max": 3}}]
    eid = str(
        api.ok("POST", "/v1/experiments", json={"name": "two", "parameters": two})["id"]
    )  # D = 10
    for value in (0, 1, 2, 3, 4, -1, -1, -1, -1, -1, -1, -1, -1, -1):
        body = {"assignments": {"x": 0.5, "y": 1}, "values": [{"value": value}]}
        api.ok("POST", f"/v1/experiments/{eid}/observations", json=body)
    assert _criteria(api, eid)["reasons"] == []  # 14 < 10 + 5
    body = {"assignments": {"x": 0.5, "y": 1}, "values": [{"value": -1}]}
    api.ok("POST", f"/v1/experiments/{eid}/observations", json=body)
    assert _criteria(api, eid)["reasons"] == ["possible_stagnation"]


def test_two_metrics_stagnate_only_once_the_budget_is_reached(api: Api) -> None:
    metrics = [{"name": "f1"}, {"name": "f2", "objective": "minimize"}]
    eid = _experiment(api, metrics=metrics, observation_budget=12)

    def observe(f1: float, f2: float) -> None:
        values = [{"name": "f1", "value": f1}, {"name": "f2", "value": f2}]
        body = {"assignments": {"x": 0.5}, "values": values}
        api.ok("POST", f"/v1/experiments/{eid}/observations", json=body)

    for n in range(8):  # a front of 8 trade-offs
        observe(n, n)
    for _ in range(5):  # 5 dominated ones: the front is unchanged
        observe(0, 10)
    assert _criteria(api, eid)["reasons"] == ["possible_stagnation", "observation_budget_reached"]
    observe(100, 0)  # a new front point among the last D
    assert _criteria(api, eid)["reasons"] == ["observation_budget_reached"]


def test_official_client_fetches_the_criteria(conn: sigopt.Connection) -> None:
    exp = conn.experiments().create(name="stopping", parameters=ONE_PARAMETER, observation_budget=1)
    criteria = conn.experiments(exp.id).stopping_criteria().fetch()
    assert criteria.should_stop is False and criteria.reasons == []
    for value in (0.1, 0.2):
        conn.experiments(exp.id).observations().create(assignments={"x": value}, value=value)
    criteria = conn.experiments(exp.id).stopping_criteria().fetch()
    assert criteria.should_stop is True
    assert criteria.reasons == ["observation_budget_reached"]
    assert criteria.to_json()["object"] == "stopping_criteria"
    expect_api_error(404, lambda: conn.experiments("999999999").stopping_criteria().fetch())


def test_reasons_function_matches_the_definition() -> None:
    inf = math.inf
    assert stopping_reasons([(v,) for v in (0, 1, 2, 3, 4, -1, -1, -1, -1, -1)], 1, None) == [
        "possible_stagnation"
    ]
    assert stopping_reasons([(v,) for v in (0, 1, 2, 3, 4, -1, -1, -1, -1)], 1, None) == []
    assert stopping_reasons([(-inf,)] * 10, 1, None) == ["possible_stagnation"]
    assert stopping_reasons([(1.0,)] * 3, 1, 2) == ["observation_budget_reached"]
    assert stopping_reasons([(1.0,)] * 2, 1, 2) == []


def test_the_front_sweep_matches_the_pairwise_definition() -> None:
    rng = random.Random(0)
    levels = [-math.inf, 0.0, 1.0, 2.0, 3.0]
    for _ in range(2000):
        values = [(rng.choice(levels), rng.choice(levels)) for _ in range(rng.randint(1, 12))]
        points = set(values)
        pairwise = {
            p for p in points if not any(q != p and q[0] >= p[0] and q[1] >= p[1] for q in points)
        }
        assert _front(values) == pairwise, values
