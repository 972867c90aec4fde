"""The engine's batch picks (suggestion_server/optimizer/gp/batch.py): many proposals from one
model for a saturated fleet, each believed before the next is picked."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

import numpy as np

from suggestion_server.optimizer.api import LinearConstraint, ParameterSpec, SearchSpec
from suggestion_server.optimizer.gp.batch import believer_picks
from suggestion_server.optimizer.gp.model import GaussianProcess, prior_mode
from suggestion_server.optimizer.linear_constraints import satisfies
from suggestion_server.optimizer.padding import padding_points, point_key
from suggestion_server.optimizer.suggester import StudySuggester
from tests.suggest.rows import MemoryRows

XY = (
    ParameterSpec("x", "double", low=-5.0, high=10.0),
    ParameterSpec("y", "double", low=0.0, high=15.0),
)


def _branin(a: Mapping[str, object]) -> float:
    x, y = float(a["x"]), float(a["y"])  # type: ignore[arg-type]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x * x + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


def _spec(parameters: tuple[ParameterSpec, ...] = XY, **changes: object) -> SearchSpec:
    fields: dict[str, object] = {
        "experiment_id": 1,
        "kind": "offline",
        "parameters": parameters,
        "metric_names": ("loss",),
        "directions": ("minimize",),
    }
    fields.update(changes)
    return SearchSpec(**fields)  # type: ignore[arg-type]


def _observed(spec: SearchSpec, engine: StudySuggester, count: int) -> MemoryRows:
    rows = MemoryRows(spec)
    for _ in range(count):
        sid, assignments = rows.create_suggestion(engine)
        rows.observe(sid, {"loss": _branin(assignments)})
    return rows


def test_believing_a_pick_moves_the_next_one_elsewhere() -> None:
    """Two candidates a hair apart share the best acquisition; the second pick is elsewhere."""
    x = np.array([[0.1], [0.5], [0.9]])
    model = GaussianProcess(x, np.array([0.0, -1.0, 0.5]), prior_mode(1))
    best = 0.45  # near the best observation, where expected improvement is highest
    candidates = np.array([[best], [best + 1e-7], [0.7], [0.2]])
    picks = believer_picks(model, -1.0, np.zeros(len(candidates)), candidates, 2)
    assert picks[0] in (0, 1)
    assert picks[1] not in (0, 1)


def test_batch_picks_are_distinct_avoid_open_points_and_keep_linear_constraints() -> None:
    constraint = LinearConstraint("less_than", 12.0, (("x", 1.0), ("y", 1.0)))
    grid = (
        ParameterSpec("x", "int", low=-5, high=10),
        ParameterSpec("y", "int", low=0, high=15),
    )
    spec = _spec(grid, linear_constraints=(constraint,))
    engine = StudySuggester(seed=3)
    rows = _observed(spec, engine, 20)
    open_points = {point_key(rows.create_suggestion(engine)[1]) for _ in range(8)}
    keys = list(range(1000, 1200))
    batch = engine.propose_batch(spec, rows.version, rows, keys)
    # About 150 integer points satisfy the constraint; 8 are open: fewer than asked come back.
    assert 100 < len(batch) < len(keys)
    points = [point_key(p) for p in batch]
    assert len(set(points)) == len(points)
    assert not set(points) & open_points
    assert all(satisfies(p, (constraint,)) for p in batch)


def test_batch_picks_are_recorded_as_open_for_the_next_proposal() -> None:
    spec = _spec()
    engine = StudySuggester(seed=4)
    rows = _observed(spec, engine, 15)
    keys = [-1, -2, -3, -4]
    batch = engine.propose_batch(spec, rows.version, rows, keys)
    for key, assignments in zip(keys, batch):
        rows.suggestions[key] = assignments  # stored as pooled entries are
    states = engine.cached_trial_states(spec.experiment_id)
    assert states is not None and states.get("RUNNING") == len(batch) == 4
    _, after = rows.create_suggestion(engine)
    assert point_key(after) not in {point_key(p) for p in batch}


def test_batch_picks_are_better_than_random_padding() -> None:
    """A sanity bound: after 20 observations of Branin, the median of 30 batch picks is far
    better than that of 30 random padding points (the engine's fallback). The batch explores
    too, so its mean is pulled up by a few picks far from the optima."""
    spec = _spec()
    engine = StudySuggester(seed=6)
    rows = _observed(spec, engine, 20)
    batch = engine.propose_batch(spec, rows.version, rows, list(range(-30, 0)))
    padding = padding_points(spec, set(), 30, random.Random(6))
    assert len(batch) == 30
    assert np.median([_branin(p) for p in batch]) < 0.25 * np.median([_branin(p) for p in padding])


def test_tpe_experiments_do_not_batch() -> None:
    """Categorical-heavy spaces use TPE, which has no batch: the caller pads instead."""
    cats = tuple(
        ParameterSpec(f"c{i}", "categorical", categories=("a", "b", "c", "d", "e"))
        for i in range(4)
    )
    spec = _spec(cats)
    engine = StudySuggester(seed=7)
    rows = MemoryRows(spec)
    for _ in range(12):
        sid, _ = rows.create_suggestion(engine)
        rows.observe(sid, {"loss": 1.0})
    assert engine.propose_batch(spec, rows.version, rows, [-1, -2]) == []
