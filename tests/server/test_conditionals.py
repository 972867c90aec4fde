"""Conditional parameters on the wire (SQLite and PostgreSQL): the official client runs a
conditional Core experiment; every 400 of the wire's conditionals section; assignments given by
users are checked; the pool's engine, batch and padding entries hold only active parameters."""

from __future__ import annotations

import copy
import json
from collections import Counter
from typing import Any

import pytest
import sigopt

from suggestion_server.optimizer.padding import point_key
from suggestion_server.optimizer.suggester import StudySuggester
from suggestion_server.pool.entries import BATCH_RANK, ENGINE_RANK, PADDING_RANK
from suggestion_server.pool.optimizer_runs import OptimizerRunner
from suggestion_server.storage.database import Store, make_engine
from tests.server.conftest import Api, expect_api_error
from tests.server.test_ai_experiments import Project
from tests.support.server import RunningServer

# The open-source server's example: x in {1, 5, 10}; b needs x in {5, 10}, c needs x = 10.
CONDITIONAL_SPEC: dict[str, Any] = {
    "name": "conditional",
    "conditionals": [{"name": "x", "values": ["1", "5", "10"]}],
    "parameters": [
        {"name": "a", "type": "double", "bounds": {"min": 0, "max": 1}},
        {
            "name": "b",
            "type": "int",
            "bounds": {"min": 1, "max": 20},
            "conditions": {"x": ["5", "10"]},
        },
        {
            "name": "c",
            "type": "categorical",
            "categorical_values": ["p", "q"],
            "conditions": {"x": "10"},
        },
    ],
    "metrics": [{"name": "loss", "objective": "minimize"}],
    "observation_budget": 30,
}
ACTIVE = {"1": {"a", "x"}, "5": {"a", "b", "x"}, "10": {"a", "b", "c", "x"}}


def _spec(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(CONDITIONAL_SPEC)
    spec.update(changes)
    return spec


def _loss(assignments: dict[str, Any]) -> float:
    loss = (float(assignments["a"]) - 0.3) ** 2
    if assignments["x"] != "1":
        loss += ((int(assignments["b"]) - 7) / 20) ** 2
    if assignments["x"] == "10":
        loss += 0.0 if assignments["c"] == "q" else 0.2
    return loss + {"1": 0.5, "5": 0.1, "10": 0.0}[str(assignments["x"])]


def _check_active(assignments: dict[str, Any]) -> None:
    assert isinstance(assignments["x"], str)
    assert set(assignments) == ACTIVE[assignments["x"]], assignments


def test_official_client_runs_a_conditional_experiment(conn: sigopt.Connection) -> None:
    exp = conn.experiments().create(**copy.deepcopy(CONDITIONAL_SPEC))
    (x,) = exp.conditionals
    assert x.name == "x" and x.values == ["1", "5", "10"]
    assert x.to_json() == {"object": "conditional", "name": "x", "values": ["1", "5", "10"]}
    conditions = {p.name: p.to_json()["conditions"] for p in exp.parameters}
    assert conditions == {"a": {}, "b": {"x": ["5", "10"]}, "c": {"x": ["10"]}}
    seen = Counter()
    for _ in range(16):  # the start-up design, then the model
        s = conn.experiments(exp.id).suggestions().create()
        _check_active(s.assignments)
        seen[s.assignments["x"]] += 1
        conn.experiments(exp.id).observations().create(
            suggestion=s.id, values=[{"name": "loss", "value": _loss(s.assignments)}]
        )
    assert len(seen) == 3  # every branch was tried
    for obs in conn.experiments(exp.id).observations().fetch().iterate_pages():
        _check_active(obs.assignments)
    best = list(conn.experiments(exp.id).best_assignments().fetch().iterate_pages())
    _check_active(best[0].assignments)
    fetched = conn.experiments(exp.id).fetch()
    assert fetched.to_json()["conditionals"] == exp.to_json()["conditionals"]
    assert fetched.progress.observation_count == 16


def test_user_assignments_are_checked(conn: sigopt.Connection) -> None:
    exp = conn.experiments().create(**copy.deepcopy(CONDITIONAL_SPEC))
    observations = conn.experiments(exp.id).observations()
    cases = [
        ({"a": 0.5}, 'Missing assignment for conditional: "x"'),
        ({"x": "7", "a": 0.5}, "Invalid value for conditional x"),
        ({"x": 5, "a": 0.5, "b": 2}, "Invalid type for conditional x"),
        ({"x": "1", "a": 0.5, "b": 3}, 'Do not provide assignment for unsatisfied parameter: "b"'),
        ({"x": "5", "a": 0.5, "b": 3, "c": "p"}, "unsatisfied parameter"),
        ({"x": "10", "a": 0.5, "b": 3}, 'Missing assignment for parameter: "c"'),
        ({"x": "5", "a": 0.5}, 'Missing assignment for parameter: "b"'),
        ({"x": "5", "a": 0.5, "b": 2.5}, "Invalid type for b"),
        ({"x": "5", "a": 0.5, "b": 3, "zz": 1}, "Unknown parameters"),
    ]
    for assignments, message in cases:
        calls = [
            lambda a=assignments: observations.create(assignments=a, value=1.0),
            lambda a=assignments: conn.experiments(exp.id).suggestions().create(assignments=a),
            lambda a=assignments: (
                conn.experiments(exp.id).queued_suggestions().create(assignments=a)
            ),
        ]
        for call in calls:
            error = expect_api_error(400, call)
            assert message in error.to_json()["message"], (assignments, error.to_json())
    good = observations.create(assignments={"x": "5", "b": 3, "a": 0.5}, value=1.0)
    assert good.assignments.to_json() == {"a": 0.5, "b": 3, "x": "5"}
    moved = conn.experiments(exp.id).observations(good.id)
    error = expect_api_error(400, lambda: moved.update(assignments={"x": "1", "a": 0.2, "b": 1}))
    assert "unsatisfied parameter" in error.to_json()["message"]
    assert moved.update(assignments={"x": "1", "a": 0.2}).assignments.to_json() == {
        "a": 0.2,
        "x": "1",
    }
    manual = (
        conn.experiments(exp.id)
        .suggestions()
        .create(assignments={"x": "10", "a": 0.1, "b": 4, "c": "q"})
    )
    assert manual.assignments.to_json() == {"a": 0.1, "b": 4, "c": "q", "x": "10"}


def test_queued_conditional_assignments_are_served_as_queued(conn: sigopt.Connection) -> None:
    exp = conn.experiments().create(**copy.deepcopy(CONDITIONAL_SPEC))
    conn.experiments(exp.id).queued_suggestions().create(assignments={"x": "1", "a": 0.25})
    served = conn.experiments(exp.id).suggestions().create()
    assert served.assignments.to_json() == {"a": 0.25, "x": "1"}


def _only(name: str, conditions: dict[str, Any]) -> dict[str, Any]:
    """Spec changes: one double parameter with ``conditions``."""
    parameter = {"name": name, "type": "double", "bounds": {"min": 0, "max": 1}}
    return {"parameters": [{**parameter, "conditions": conditions}]}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            _only("a", {"z": "5"}),
            "Parameter a attempted to use non-existent conditional z",
        ),
        (
            _only("a", {"x": ["1", "9"]}),
            "Conditional x on parameter a attempted to use non-existent value 9",
        ),
        (
            _only("a", {"x": []}),
            "must provide at least one value",
        ),
        (
            {
                "conditionals": [
                    {"name": "x", "values": ["1", "5"]},
                    {"name": "x", "values": ["2", "3"]},
                ]
            },
            "Duplicate conditional name x",
        ),
        ({"conditionals": [{"name": "x", "values": ["1", "1"]}]}, "Duplicate conditional value 1"),
        ({"conditionals": [{"name": "x", "values": ["1"]}]}, "at least 2 values"),
        ({"conditionals": [{"name": "x", "values": []}]}, "at least 2 values"),
        ({"conditionals": [{"name": "a", "values": ["1", "2"]}]}, "both named a"),
        ({"conditionals": [{"name": "x", "values": ["1", 5]}]}, "conditionals.0.values.1"),
        ({"conditionals": [{"name": "x", "values": ["1", "5"], "extra": 1}]}, "`extra`"),
        ({"num_solutions": 2}, "Conditional experiments cannot be run with multisolution"),
        (
            _only("b", {"x": "5"}),
            "Need at least one parameter that satisfies each conditional value",
        ),
        (
            {
                "linear_constraints": [
                    {"type": "less_than", "threshold": 1.0, "terms": [{"name": "b", "weight": 1.0}]}
                ]
            },
            "Constraint cannot be defined on a conditioned parameter b",
        ),
        (
            {**_only("a", {"x": "5"}), "conditionals": []},
            "non-existent conditional x",
        ),
    ],
)
def test_bad_conditional_experiments_are_rejected(
    api: Api, changes: dict[str, Any], message: str
) -> None:
    response = api.post("/v1/experiments", json=_spec(**changes))
    assert response.status_code == 400, response.text
    assert message in response.json()["message"], response.json()


def test_grid_experiments_cannot_have_conditionals(api: Api) -> None:
    spec = _spec(
        type="grid",
        parameters=[
            {"name": "a", "type": "double", "bounds": {"min": 0, "max": 1}, "grid": [0.1, 0.2]},
            {"name": "b", "type": "int", "bounds": {"min": 1, "max": 3}, "conditions": {"x": "5"}},
        ],
    )
    response = api.post("/v1/experiments", json=spec)
    assert response.status_code == 400
    assert "Grid search experiments do not support conditional parameters" in response.text


def test_conditionals_and_conditions_cannot_be_updated(api: Api) -> None:
    exp = api.ok("POST", "/v1/experiments", json=_spec())
    path = f"/v1/experiments/{exp['id']}"
    for body, message in (
        ({"conditionals": [{"name": "x", "values": ["1", "5"]}]}, "Conditionals cannot be updated"),
        ({"conditionals": []}, "Conditionals cannot be updated"),
        ({"parameters": [{"name": "b", "conditions": {"x": "5"}}]}, "Conditions cannot be updated"),
        ({"parameters": [{"name": "a", "conditions": {"x": "1"}}]}, "Conditions cannot be updated"),
    ):
        response = api.put(path, json=body)
        assert response.status_code == 400, (body, response.text)
        assert message in response.json()["message"]
    # A fetched experiment posted back echoes them unchanged: that is no update.
    echoed = {
        "conditionals": exp["conditionals"],
        "parameters": [
            {"name": p["name"], "conditions": p["conditions"]} for p in exp["parameters"]
        ],
        "name": "renamed",
    }
    assert api.ok("PUT", path, json=echoed)["name"] == "renamed"
    assert api.ok("GET", path)["conditionals"] == exp["conditionals"]


def test_experiments_without_conditionals_render_as_before(api: Api) -> None:
    spec = copy.deepcopy(CONDITIONAL_SPEC)
    del spec["conditionals"]
    for param in spec["parameters"]:
        param.pop("conditions", None)
    exp = api.ok("POST", "/v1/experiments", json=spec)
    assert exp["conditionals"] == []
    assert all(p["conditions"] == {} for p in exp["parameters"])
    created = api.ok("POST", f"/v1/experiments/{exp['id']}/suggestions", json={})
    assert set(created["assignments"]) == {"a", "b", "c"}


def test_pool_entries_hold_only_active_parameters(server: RunningServer, api: Api) -> None:
    """A saturated run's entries as the pool would store them: padding during the start-up
    design, the engine's full proposals and batch picks once it models."""
    eid = str(api.ok("POST", "/v1/experiments", json=_spec())["id"])
    path = f"/v1/experiments/{eid}"

    def observe(count: int) -> None:
        for _ in range(count):
            created = api.ok("POST", f"{path}/suggestions", json={})
            body = {"suggestion": created["id"], "value": _loss(created["assignments"])}
            api.ok("POST", f"{path}/observations", json=body)

    def open_suggestions(count: int) -> set[Any]:
        return {
            point_key(api.ok("POST", f"{path}/suggestions", json={})["assignments"])
            for _ in range(count)
        }

    def saturated_run(engine: StudySuggester) -> list[dict[str, Any]]:
        store = Store(make_engine(server.db_url))
        try:
            runner = OptimizerRunner(store, engine)
            runner.compute(int(eid), waiting=100, cycle_s=0.5, requested=False)
            run = runner.compute(int(eid), waiting=100, cycle_s=0.5, requested=False)
        finally:
            store.dispose()
        assert run.pool_mode
        return [{"rank": entry.rank, **json.loads(entry.assignments_json)} for entry in run.entries]

    observe(12)
    pending = open_suggestions(16)
    batch = saturated_run(StudySuggester(seed=3))
    ranks = Counter(e["rank"] for e in batch)
    assert ranks[ENGINE_RANK] >= 1 and ranks[BATCH_RANK] > 10, ranks
    padded = saturated_run(_NoBatchPicks(seed=4))
    ranks = Counter(e["rank"] for e in padded)
    assert ranks[ENGINE_RANK] >= 1 and ranks[PADDING_RANK] > 10, ranks
    for entry in batch + padded:
        assignments = {k: v for k, v in entry.items() if k != "rank"}
        _check_active(assignments)
        assert point_key(assignments) not in pending
    padding_branches = Counter(e["x"] for e in padded if e["rank"] == PADDING_RANK)
    assert padding_branches.keys() == {"1", "5", "10"}


class _NoBatchPicks(StudySuggester):
    """The engine as for a TPE experiment: no batch picks, so a saturated run pads."""

    def propose_batch(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return []


def test_the_experiment_page_shows_conditionals_as_columns(server: RunningServer, api: Api) -> None:
    eid = str(api.ok("POST", "/v1/experiments", json=_spec())["id"])
    created = api.ok("POST", f"/v1/experiments/{eid}/suggestions", json={})
    data = api.session.get(f"{server.url}/experiments/{eid}/data.json", timeout=30)
    assert data.status_code == 200, data.text
    payload = data.json()
    columns = {p["name"]: p for p in payload["parameters"]}
    assert set(columns) == {"a", "b", "c", "x"}
    assert columns["x"]["categories"] == ["1", "5", "10"]
    ((_, _, assignments, _),) = payload["suggestions"]
    assert assignments == created["assignments"]


def test_ai_experiment_runs_hold_only_active_parameters(api: Api) -> None:
    project = Project(api)
    body = {k: v for k, v in _spec().items() if k != "observation_budget"}
    experiment = project.experiment(**body, budget=10)
    assert experiment["conditionals"] == [
        {"object": "conditional", "name": "x", "values": ["1", "5", "10"]}
    ]
    for _ in range(3):
        _check_active(project.run(experiment["id"])["assignments"])
    explicit = project.run(experiment["id"], assignments={"x": "5", "a": 0.5, "b": 2})
    assert explicit["assignments"] == {"a": 0.5, "b": 2, "x": "5"}
    refused = project.new_run(experiment["id"], assignments={"x": "1", "a": 0.5, "b": 2})
    assert refused.status_code == 400
    assert "Do not provide assignment for unsatisfied parameter" in refused.text
