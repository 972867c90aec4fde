"""Experiment types, parameter kinds, objectives, and specs the engine refuses."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

import pytest

from suggestion_server.optimizer.api import ParameterSpec, SearchSpec
from suggestion_server.optimizer.suggester import StudySuggester
from tests.suggest.rows import MemoryRows

MIXED = (
    ParameterSpec("x", "double", -2.0, 3.0),
    ParameterSpec("lr", "double", 1e-6, 1e-1, log=True),
    ParameterSpec("units", "int", 8, 512, log=True),
    ParameterSpec("depth", "int", 1, 6),
    ParameterSpec("act", "categorical", categories=("relu", "tanh", "gelu")),
)


def assert_within(assignments: Mapping[str, object], params: tuple[ParameterSpec, ...]) -> None:
    assert set(assignments) == {p.name for p in params}
    for param in params:
        value = assignments[param.name]
        if param.type == "categorical":
            assert value in param.categories
        elif param.type == "int":
            assert type(value) is int
            assert param.low is not None and param.high is not None
            assert param.low <= value <= param.high
        else:
            assert type(value) is float
            assert param.low is not None and param.high is not None
            assert param.low <= value <= param.high


@pytest.mark.parametrize("kind", ["offline", "random"])
def test_sampled_types_stay_within_every_parameter_kind(kind: str) -> None:
    spec = SearchSpec(1, kind, MIXED, ("acc",), ("maximize",))  # type: ignore[arg-type]
    rows = MemoryRows(spec)
    engine = StudySuggester(seed=11)
    for _ in range(30):
        sid, assignments = rows.create_suggestion(engine)
        assert_within(assignments, MIXED)
        rows.observe(sid, {"acc": -((float(assignments["x"]) - 1.0) ** 2)})


def test_offline_optimizes_toward_the_better_region() -> None:
    params = (ParameterSpec("x", "double", 0.0, 10.0),)
    spec = SearchSpec(1, "offline", params, ("loss",), ("minimize",))
    rows = MemoryRows(spec)
    engine = StudySuggester(seed=2)
    xs = []
    for _ in range(60):
        sid, assignments = rows.create_suggestion(engine)
        x = float(assignments["x"])
        xs.append(x)
        rows.observe(sid, {"loss": (x - 2.0) ** 2})
    late = xs[-20:]
    assert sum(abs(x - 2.0) < 1.5 for x in late) >= 14  # random would give ~6 of 20


def test_two_objectives_are_modelled_in_their_directions() -> None:
    params = (ParameterSpec("x", "double", 0.0, 1.0), ParameterSpec("y", "double", 0.0, 1.0))
    spec = SearchSpec(1, "offline", params, ("accuracy", "latency"), ("maximize", "minimize"))
    rows = MemoryRows(spec)
    engine = StudySuggester(seed=8)
    xs = []
    for _ in range(60):
        sid, assignments = rows.create_suggestion(engine)
        x, y = float(assignments["x"]), float(assignments["y"])
        xs.append(x)
        # Both objectives prefer small x; they trade off only in y.
        rows.observe(sid, {"accuracy": 1.0 - x + y, "latency": x + y})
    assert engine.cached_trial_states(1) == {"COMPLETE": 59, "RUNNING": 1}
    assert sum(x < 0.3 for x in xs[-20:]) >= 12  # random would give ~6 of 20


def test_grid_visits_every_point_once_then_starts_another_pass() -> None:
    params = (
        ParameterSpec("lr", "double", 0.001, 1.0, grid=(0.001, 0.01, 0.1)),
        ParameterSpec("opt", "categorical", categories=("sgd", "adam")),
    )
    spec = SearchSpec(1, "grid", params, ("acc",), ("maximize",))
    rows = MemoryRows(spec)
    engine = StudySuggester()
    seen = []
    for i in range(8):
        sid, assignments = rows.create_suggestion(engine)
        seen.append((assignments["lr"], assignments["opt"]))
        if i % 2 == 0:
            rows.observe(sid, {"acc": 0.5}, failed=(i == 2))
    assert seen[:6] == [
        (0.001, "sgd"),
        (0.001, "adam"),
        (0.01, "sgd"),
        (0.01, "adam"),
        (0.1, "sgd"),
        (0.1, "adam"),
    ]
    assert seen[6:] == [(0.001, "sgd"), (0.001, "adam")]  # second pass, least visited first


def test_grid_int_parameters_use_their_range_or_explicit_values() -> None:
    params = (ParameterSpec("n", "int", 1, 3), ParameterSpec("k", "int", 0, 100, grid=(10, 50)))
    spec = SearchSpec(1, "grid", params, ("acc",), ("maximize",))
    rows = MemoryRows(spec)
    engine = StudySuggester()
    points = {tuple(rows.create_suggestion(engine)[1].values()) for _ in range(6)}
    assert points == {(n, k) for n in (1, 2, 3) for k in (10, 50)}


def test_observations_outside_narrowed_bounds_do_not_crash() -> None:
    params = (ParameterSpec("x", "double", 0.0, 10.0), ParameterSpec("n", "int", 0, 10))
    spec = SearchSpec(1, "offline", params, ("loss",), ("minimize",))
    rows = MemoryRows(spec)
    engine = StudySuggester(seed=9)
    for _ in range(15):
        sid, assignments = rows.create_suggestion(engine)
        rows.observe(sid, {"loss": float(assignments["x"])})
    narrowed = (ParameterSpec("x", "double", 4.0, 5.0), ParameterSpec("n", "int", 3, 4))
    rows.spec = replace(spec, parameters=narrowed)
    rows.version += 1
    for _ in range(15):
        sid, assignments = rows.create_suggestion(engine)
        assert_within(assignments, narrowed)
        rows.observe(sid, {"loss": float(assignments["x"])})
    states = engine.cached_trial_states(1)
    assert states is not None and states["COMPLETE"] + states.get("RUNNING", 0) <= 30


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (SearchSpec(1, "offline", (), ("y",), ("maximize",)), "at least one parameter"),
        (
            SearchSpec(1, "bayes", (ParameterSpec("x", "int", 0, 1),), ("y",), ("maximize",)),  # type: ignore[arg-type]
            "experiment type",
        ),
        (
            SearchSpec(
                1, "offline", (ParameterSpec("x", "double", 2.0, 1.0),), ("y",), ("maximize",)
            ),
            "parameter 'x' (double): low (2.0) must not be greater than high (1.0)",
        ),
        (
            SearchSpec(
                1,
                "offline",
                (ParameterSpec("x", "double", 0.0, 1.0, log=True),),
                ("y",),
                ("maximize",),
            ),
            "parameter 'x' (double): a log-transformed parameter needs low > 0",
        ),
        (
            SearchSpec(
                1, "offline", (ParameterSpec("x", "double", 0.0, math.inf),), ("y",), ("maximize",)
            ),
            "must be finite",
        ),
        (
            SearchSpec(1, "offline", (ParameterSpec("n", "int", 0.5, 3),), ("y",), ("maximize",)),
            "parameter 'n' (int): low and high must be integers",
        ),
        (
            SearchSpec(1, "offline", (ParameterSpec("c", "categorical"),), ("y",), ("maximize",)),
            "parameter 'c' (categorical): no categories",
        ),
        (
            SearchSpec(
                1,
                "offline",
                (ParameterSpec("x", "int", 0, 1), ParameterSpec("x", "int", 0, 1)),
                ("y",),
                ("maximize",),
            ),
            "duplicate names ['x']",
        ),
        (
            SearchSpec(
                1, "offline", (ParameterSpec("x", "int", 0, 1),), ("a", "b", "c"), ("maximize",) * 3
            ),
            "one or two optimized metrics",
        ),
        (
            SearchSpec(1, "offline", (ParameterSpec("x", "int", 0, 1),), ("a", "b"), ("maximize",)),
            "2 metric names but 1 directions",
        ),
        (
            SearchSpec(1, "offline", (ParameterSpec("x", "int", 0, 1),), ("a",), ("up",)),  # type: ignore[arg-type]
            "maximize or minimize, got 'up'",
        ),
        (
            SearchSpec(1, "grid", (ParameterSpec("x", "double", 0.0, 1.0),), ("y",), ("maximize",)),
            "parameter 'x' (double): a grid experiment needs explicit grid values",
        ),
        (
            SearchSpec(
                1,
                "grid",
                (ParameterSpec("x", "double", 0.0, 1.0, grid=(0.5, 2.0)),),
                ("y",),
                ("maximize",),
            ),
            "grid value 2.0 is outside",
        ),
        (
            SearchSpec(
                1,
                "grid",
                (ParameterSpec("a", "int", 0, 9999), ParameterSpec("b", "int", 0, 9999)),
                ("y",),
                ("maximize",),
            ),
            "the grid has 100000000 points",
        ),
    ],
)
def test_bad_specs_are_rejected_naming_the_field(spec: SearchSpec, message: str) -> None:
    engine = StudySuggester()
    with pytest.raises(ValueError, match=None) as raised:
        MemoryRows(spec).create_suggestion(engine)
    assert message in str(raised.value)
    assert engine.cached_trial_states(1) is None  # nothing half-built is cached


def test_check_spec_raises_what_propose_would() -> None:
    from suggestion_server.optimizer.suggester import check_spec

    huge = SearchSpec(
        1,
        "grid",
        (ParameterSpec("a", "int", 0, 9999), ParameterSpec("b", "int", 0, 9999)),
        ("y",),
        ("maximize",),
    )
    with pytest.raises(ValueError, match="the grid has 100000000 points"):
        check_spec(huge)
    check_spec(replace(huge, kind="offline"))  # fine for sampled types
