"""The engine's model choice, start-up design, reproducibility and constraints, on real rows."""

from __future__ import annotations

import math

from suggestion_server.optimizer.api import (
    ConstraintMetric,
    LinearConstraint,
    ParameterSpec,
    SearchSpec,
)
from suggestion_server.optimizer.fleet_sampler import FleetSampler
from suggestion_server.optimizer.gp.proposer import GaussianProcessProposer
from suggestion_server.optimizer.linear_constraints import satisfies
from suggestion_server.optimizer.samplers import CachedReprTPESampler, engine_for, sampler_for
from suggestion_server.optimizer.suggester import StudySuggester
from tests.suggest.rows import MemoryRows

XY = (
    ParameterSpec("x", "double", low=-5.0, high=10.0),
    ParameterSpec("y", "double", low=0.0, high=15.0),
)


def _spec(**changes: object) -> SearchSpec:
    fields: dict[str, object] = {
        "experiment_id": 1,
        "kind": "offline",
        "parameters": XY,
        "metric_names": ("loss",),
        "directions": ("minimize",),
    }
    fields.update(changes)
    return SearchSpec(**fields)  # type: ignore[arg-type]


def _branin(a: dict[str, object]) -> float:
    x, y = float(a["x"]), float(a["y"])  # type: ignore[arg-type]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x * x + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


def _fleet_run(
    engine: StudySuggester, rows: MemoryRows, budget: int, workers: int = 4
) -> list[dict[str, object]]:
    """``workers`` suggestions open at a time; the oldest is observed, then one more asked."""
    proposals: list[dict[str, object]] = []
    open_ids: list[int] = []
    while len(rows.observations) < budget:
        while len(open_ids) < workers and len(proposals) < budget:
            sid, assignments = rows.create_suggestion(engine)
            proposals.append(dict(assignments))
            open_ids.append(sid)
        sid = open_ids.pop(0)
        rows.observe(sid, {"loss": _branin(rows.suggestions[sid])})
    return proposals


def test_engine_choice_follows_the_space() -> None:
    assert engine_for(_spec()) == "gp"
    assert engine_for(_spec(metric_names=("a", "b"), directions=("minimize",) * 2)) == "tpe"
    many = tuple(ParameterSpec(f"p{i}", "double", low=0.0, high=1.0) for i in range(11))
    assert engine_for(_spec(parameters=many)) == "tpe"
    wide = (ParameterSpec("c", "categorical", categories=tuple("abcdefghijklmnopq")),)
    assert engine_for(_spec(parameters=wide)) == "tpe"
    sampler = sampler_for(_spec(), seed=1)
    assert isinstance(sampler, FleetSampler)
    assert isinstance(sampler.model, GaussianProcessProposer)
    two = sampler_for(_spec(metric_names=("a", "b"), directions=("minimize",) * 2), seed=1)
    assert isinstance(two, FleetSampler) and isinstance(two.model, CachedReprTPESampler)


def test_the_same_seed_replays_the_same_suggestions() -> None:
    runs = [_fleet_run(StudySuggester(seed=7), MemoryRows(_spec()), budget=16) for _ in range(2)]
    assert runs[0] == runs[1]
    other = _fleet_run(StudySuggester(seed=8), MemoryRows(_spec()), budget=16)
    assert other != runs[0]


def test_open_suggestions_count_towards_the_start_up_design() -> None:
    """Ten start-up points in all, whether they were observed yet or are still open."""
    engine = StudySuggester(seed=3)
    rows = MemoryRows(_spec())
    for _ in range(9):  # nine open, none observed
        rows.create_suggestion(engine)
    sid, _ = rows.create_suggestion(engine)
    rows.observe(sid, {"loss": 1.0})
    study = engine._slots[1].study  # the cached study: its sampler is the fleet sampler
    assert study is not None
    sampler = study.sampler
    assert isinstance(sampler, FleetSampler)
    assert sampler._startup_drawn == 10
    rows.create_suggestion(engine)  # 9 open + 1 observed: the model proposes now
    assert sampler._startup_drawn == 10


def test_the_gp_beats_random_search_on_branin() -> None:
    """A sanity bound, far from the benchmark's numbers: best of 30 below 1.0 (optimum 0.398)."""
    rows = MemoryRows(_spec())
    _fleet_run(StudySuggester(seed=11), rows, budget=30)
    best = min(row.values["loss"] for row in rows.observations.values() if row.values)
    assert best < 1.0


def test_linear_constraints_are_never_violated() -> None:
    constraint = LinearConstraint("less_than", 5.0, (("x", 1.0), ("y", 1.0)))
    spec = _spec(linear_constraints=(constraint,))
    proposals = _fleet_run(StudySuggester(seed=5), MemoryRows(spec), budget=24)
    assert all(satisfies(p, (constraint,)) for p in proposals)  # type: ignore[arg-type]


def test_a_constraint_metric_steers_suggestions_to_the_feasible_side() -> None:
    """Feasible only where x <= 0: after start-up most suggestions land there."""
    spec = _spec(constraint_metrics=(ConstraintMetric("margin", "maximize", 0.0),))
    engine = StudySuggester(seed=9)
    rows = MemoryRows(spec)
    proposals = []
    for _ in range(30):
        sid, assignments = rows.create_suggestion(engine)
        proposals.append(assignments)
        x = float(assignments["x"])
        rows.observe(sid, {"loss": _branin(assignments), "margin": -x})
    later = proposals[10:]
    assert sum(1 for p in later if float(p["x"]) <= 0.0) >= 0.8 * len(later)


def test_a_thin_feasible_region_still_gets_feasible_suggestions() -> None:
    """x + y >= 24 leaves 0.2 % of the box: most random candidates miss it."""
    constraint = LinearConstraint("greater_than", 24.0, (("x", 1.0), ("y", 1.0)))
    spec = _spec(linear_constraints=(constraint,))
    proposals = _fleet_run(StudySuggester(seed=2), MemoryRows(spec), budget=16)
    assert all(satisfies(p, (constraint,)) for p in proposals)  # type: ignore[arg-type]
