"""Constraint metrics, linear constraints and two-metric experiments through the official
`sigopt` client, on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

import sigopt

from tests.server.conftest import expect_api_error

LINEAR = {
    "type": "less_than",
    "threshold": 1.0,
    "terms": [{"name": "a", "weight": 1.0}, {"name": "b", "weight": 1.0}],
}


def _box_experiment(conn: sigopt.Connection, **extra: Any) -> Any:
    return conn.experiments().create(
        name="constrained",
        parameters=[
            {"name": "a", "type": "double", "bounds": {"min": 0.0, "max": 1.0}},
            {"name": "b", "type": "double", "bounds": {"min": 0.0, "max": 1.0}},
        ],
        observation_budget=30,
        **extra,
    )


def test_linear_constraints_are_stored_and_never_violated(conn: sigopt.Connection) -> None:
    exp = _box_experiment(conn, linear_constraints=[LINEAR])
    stored = conn.experiments(exp.id).fetch().to_json()["linear_constraints"]
    assert stored == [LINEAR]
    for n in range(14):  # start-up design, then the model
        s = conn.experiments(exp.id).suggestions().create()
        a, b = s.assignments["a"], s.assignments["b"]
        assert a + b <= 1.0 + 1e-9, (n, a, b)
        conn.experiments(exp.id).observations().create(suggestion=s.id, value=a - b)


def test_bad_linear_constraints_name_the_problem(conn: sigopt.Connection) -> None:
    unknown = dict(LINEAR, terms=[{"name": "zz", "weight": 1.0}])
    error = expect_api_error(400, lambda: _box_experiment(conn, linear_constraints=[unknown]))
    assert "unknown parameter 'zz'" in str(error)
    impossible = dict(LINEAR, threshold=-1.0)
    error = expect_api_error(400, lambda: _box_experiment(conn, linear_constraints=[impossible]))
    assert "no assignment within the bounds" in str(error)
    wrong_type = dict(LINEAR, type="equal")
    error = expect_api_error(400, lambda: _box_experiment(conn, linear_constraints=[wrong_type]))
    assert "type" in str(error)


def test_constraint_metric_best_is_only_among_feasible(conn: sigopt.Connection) -> None:
    exp = _box_experiment(
        conn,
        metrics=[
            {"name": "score", "objective": "maximize"},
            {"name": "cost", "objective": "minimize", "strategy": "constraint", "threshold": 0.5},
        ],
    )
    observations = conn.experiments(exp.id).observations()
    # The highest score breaks the constraint (cost above 0.5): it must not be the best.
    observations.create(
        assignments={"a": 0.9, "b": 0.9},
        values=[{"name": "score", "value": 10.0}, {"name": "cost", "value": 0.9}],
    )
    feasible = observations.create(
        assignments={"a": 0.1, "b": 0.2},
        values=[{"name": "score", "value": 3.0}, {"name": "cost", "value": 0.2}],
    )
    best = conn.experiments(exp.id).best_assignments().fetch()
    assert [o.id for o in best.iterate_pages()] == [feasible.id]
    progress = conn.experiments(exp.id).fetch().progress
    assert progress.best_observation.id == feasible.id
    no_threshold = [{"name": "score"}, {"name": "cost", "strategy": "constraint"}]
    error = expect_api_error(400, lambda: _box_experiment(conn, metrics=no_threshold))
    assert "threshold" in str(error)
    # The engine takes constraint metrics into account and keeps proposing.
    s = conn.experiments(exp.id).suggestions().create()
    assert 0.0 <= s.assignments["a"] <= 1.0


def test_two_metrics_give_a_pareto_front(conn: sigopt.Connection) -> None:
    exp = _box_experiment(
        conn,
        metrics=[
            {"name": "accuracy", "objective": "maximize"},
            {"name": "latency", "objective": "minimize"},
        ],
    )
    observations = conn.experiments(exp.id).observations()
    points = [(0.9, 50.0), (0.8, 10.0), (0.7, 60.0), (0.95, 80.0)]  # (0.7, 60) is dominated
    ids = []
    for i, (accuracy, latency) in enumerate(points):
        ids.append(
            observations.create(
                assignments={"a": i / 10, "b": i / 10},
                values=[
                    {"name": "accuracy", "value": accuracy},
                    {"name": "latency", "value": latency},
                ],
            ).id
        )
    front = {o.id for o in conn.experiments(exp.id).best_assignments().fetch().iterate_pages()}
    assert front == {ids[0], ids[1], ids[3]}
    s = conn.experiments(exp.id).suggestions().create()
    assert set(s.assignments) == {"a", "b"}
