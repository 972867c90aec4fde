"""The engine with conditionals: every proposal (start-up design, Gaussian process, TPE, random
search, batch picks, padding) holds every conditional and only the parameters active under it;
the model sees every observation; the unit cube pins inactive dimensions."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import numpy as np
import pytest

from suggestion_server.optimizer.api import (
    AssignmentValue,
    ConditionalSpec,
    ParameterSpec,
    SearchSpec,
)
from suggestion_server.optimizer.conditionals import (
    Conditioning,
    OnActiveParameters,
    modelled_spec,
)
from suggestion_server.optimizer.encoding import UnitCubeEncoding
from suggestion_server.optimizer.padding import padding_points, point_key
from suggestion_server.optimizer.samplers import engine_for
from suggestion_server.optimizer.space import validate_spec
from suggestion_server.optimizer.suggester import StudySuggester
from tests.suggest.rows import MemoryRows

MODEL = ConditionalSpec("model", ("linear", "svm", "forest"))
PARAMETERS = (
    ParameterSpec("scale", "double", low=0.0, high=1.0),
    ParameterSpec("c", "double", low=1e-3, high=10.0, log=True, conditions=(("model", ("svm",)),)),
    ParameterSpec(
        "kernel", "categorical", categories=("rbf", "poly"), conditions=(("model", ("svm",)),)
    ),
    ParameterSpec("depth", "int", low=1, high=12, conditions=(("model", ("forest",)),)),
    ParameterSpec("reg", "double", low=0.0, high=1.0, conditions=(("model", ("linear", "svm")),)),
)
ACTIVE = {
    "linear": {"model", "scale", "reg"},
    "svm": {"model", "scale", "c", "kernel", "reg"},
    "forest": {"model", "scale", "depth"},
}


def _spec(kind: str = "offline", parameters: tuple[ParameterSpec, ...] = PARAMETERS) -> SearchSpec:
    return SearchSpec(
        experiment_id=7,
        kind=kind,  # type: ignore[arg-type]
        parameters=parameters,
        metric_names=("loss",),
        directions=("minimize",),
        conditionals=(MODEL,),
    )


def _loss(a: dict[str, Any]) -> float:
    base = (float(a["scale"]) - 0.4) ** 2
    if a["model"] == "svm":
        return base + (np.log10(float(a["c"])) - 0.5) ** 2 + (0.0 if a["kernel"] == "rbf" else 0.3)
    if a["model"] == "forest":
        return base + ((int(a["depth"]) - 6) / 6) ** 2 + 0.1
    return base + float(a["reg"]) + 0.5


def _check(assignments: dict[str, AssignmentValue]) -> None:
    assert isinstance(assignments["model"], str)
    assert set(assignments) == ACTIVE[str(assignments["model"])], assignments


def _run(engine: StudySuggester, spec: SearchSpec, asks: int, open_at_once: int = 4) -> MemoryRows:
    rows = MemoryRows(spec)
    waiting: list[int] = []
    for _ in range(asks):
        sid, assignments = rows.create_suggestion(engine)
        _check(assignments)
        waiting.append(sid)
        if len(waiting) >= open_at_once:
            done = waiting.pop(0)
            rows.observe(done, {"loss": _loss(rows.suggestions[done])})
    return rows


def test_gaussian_process_proposals_hold_only_active_parameters() -> None:
    spec = _spec()
    assert engine_for(modelled_spec(spec)) == "gp"
    engine = StudySuggester(seed=5)
    rows = _run(engine, spec, 40)
    branches = Counter(str(a["model"]) for a in rows.suggestions.values())
    assert set(branches) == set(ACTIVE)
    open_points = [point_key(r.assignments) for r in rows.open_suggestions()]
    assert len(open_points) == len(set(open_points))
    # Every observation entered the model (trimmed rows are filled, not dropped).
    rows.create_suggestion(engine)
    states = engine.cached_trial_states(spec.experiment_id)
    assert states is not None and states["COMPLETE"] == len(rows.observations)
    # The model reached a branch's optimum (svm: 0, forest: 0.1) within the budget.
    assert min(r.values["loss"] for r in rows.observations.values() if r.values) < 0.11


def test_tpe_and_random_search_hold_only_active_parameters() -> None:
    many = PARAMETERS + tuple(
        ParameterSpec(f"extra{i}", "double", low=0.0, high=1.0, conditions=(("model", ("svm",)),))
        for i in range(8)
    )
    active_svm = ACTIVE["svm"] | {f"extra{i}" for i in range(8)}
    spec = _spec(parameters=many)
    assert engine_for(modelled_spec(spec)) == "tpe"
    for kind in ("offline", "random"):
        engine = StudySuggester(seed=11)
        rows = MemoryRows(_spec(kind, many))
        for n in range(30):
            sid, assignments = rows.create_suggestion(engine)
            model = str(assignments["model"])
            assert set(assignments) == (active_svm if model == "svm" else ACTIVE[model])
            if n % 2:
                base = {k: v for k, v in assignments.items() if not k.startswith("extra")}
                rows.observe(sid, {"loss": _loss(base)})
        assert len({str(a["model"]) for a in rows.suggestions.values()}) == 3


def test_batch_picks_hold_only_active_parameters() -> None:
    spec = _spec()
    engine = StudySuggester(seed=3)
    rows = _run(engine, spec, 20)
    batch = engine.propose_batch(spec, rows.version, rows, [900 + i for i in range(40)])
    assert len(batch) > 20
    for assignments in batch:
        _check(assignments)
    keys = [point_key(a) for a in batch]
    assert len(set(keys)) == len(keys)
    assert not set(keys) & {point_key(r.assignments) for r in rows.open_suggestions()}


def test_padding_draws_a_branch_then_its_parameters() -> None:
    spec = _spec()
    taken = {point_key({"model": "linear", "scale": 0.5, "reg": 0.5})}
    points = padding_points(spec, set(taken), 600, random.Random(4))
    assert len(points) == 600
    for point in points:
        _check(point)
        assert point_key(point) not in taken
    branches = Counter(str(p["model"]) for p in points)
    assert all(150 < n < 250 for n in branches.values()), branches


def test_user_rows_with_inactive_parameters_absent_reach_the_model() -> None:
    spec = _spec()
    engine = StudySuggester(seed=8)
    rows = MemoryRows(spec)
    manual = [
        {"model": "forest", "scale": 0.4, "depth": 6},
        {"model": "linear", "scale": 0.1, "reg": 0.2},
        {"model": "svm", "scale": 0.3, "c": 3.0, "kernel": "rbf", "reg": 0.0},
    ]
    for n in range(12):
        rows.observe(None, {"loss": _loss(manual[n % 3])}, assignments=manual[n % 3])
    _, proposed = rows.create_suggestion(engine)
    _check(proposed)
    states = engine.cached_trial_states(spec.experiment_id)
    assert states is not None and states["COMPLETE"] == 12


def test_canonical_and_served_forms() -> None:
    conditioning = Conditioning(modelled_spec(_spec()))
    full: dict[str, AssignmentValue] = {
        "model": "forest",
        "scale": 0.5,
        "c": 2.0,
        "kernel": "rbf",
        "depth": 3,
        "reg": 0.7,
    }
    canonical = conditioning.filled(full)
    # Inactive: at their placeholders (upper bound, last category).
    assert canonical == {**full, "c": 10.0, "kernel": "poly", "reg": 1.0}
    assert conditioning.served(canonical) == {"model": "forest", "scale": 0.5, "depth": 3}
    assert conditioning.filled(conditioning.served(canonical)) == canonical


def test_the_unit_cube_pins_inactive_dimensions() -> None:
    parameters = modelled_spec(_spec()).parameters
    encoding = UnitCubeEncoding(parameters)
    rng = np.random.default_rng(0)
    points = encoding.random_points(200, rng)
    snapped = encoding.snapped(points)
    for point in snapped:
        decoded = encoding.decode(point)
        canonical = Conditioning(modelled_spec(_spec())).filled(decoded)
        assert decoded == canonical
        np.testing.assert_allclose(encoding.encode(decoded), point, atol=1e-12)

    def acquisition(
        x: np.ndarray, with_gradient: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        return x.sum(axis=1), np.ones_like(x) if with_gradient else None

    judged = OnActiveParameters(acquisition, encoding.inactive)
    values, gradient = judged(points, with_gradient=True)
    assert gradient is not None
    pinned, mask = encoding.inactive.apply(points)
    np.testing.assert_allclose(values, pinned.sum(axis=1))
    assert (gradient[mask] == 0).all() and (gradient[~mask] == 1).all()
    assert mask.any() and (~mask).any()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            _spec(parameters=(ParameterSpec("a", "double", 0, 1, conditions=(("zz", ("x",)),)),)),
            "unknown conditional 'zz'",
        ),
        (
            _spec(
                parameters=(ParameterSpec("a", "double", 0, 1, conditions=(("model", ("x",)),)),)
            ),
            "needs values among",
        ),
        (_spec(kind="grid"), "grid experiments cannot have conditionals"),
        (
            _spec(parameters=(ParameterSpec("model", "double", 0, 1),)),
            "shares its name with a conditional",
        ),
    ],
)
def test_unusable_conditions_are_refused(spec: SearchSpec, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_spec(spec)
