"""Runs stopped early reach the engine as what they are: configurations seen to be losing.

An observation whose training run was told to stop (``stopped_at_step``) is neither a failure nor
a full-length value: one objective makes it a PRUNED trial (TPE ranks it after every complete
trial; the Gaussian process models it no better than the worst full-length value), two
objectives a COMPLETE trial no better than the worst full-length value of each objective.
"""

from __future__ import annotations

import dataclasses
import datetime

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from suggestion_server.optimizer.api import AssignmentValue, ParameterSpec, SearchSpec
from suggestion_server.optimizer.gp.proposer import GaussianProcessProposer, modelled_values
from suggestion_server.optimizer.suggester import StudySuggester
from tests.suggest.rows import MemoryRows


def _observe(
    rows: MemoryRows,
    assignments: dict[str, AssignmentValue],
    values: dict[str, float] | None,
    *,
    stopped_at: int | None = None,
    failed: bool = False,
) -> None:
    oid = rows.observe(None, values, failed=failed, assignments=assignments)
    rows.observations[oid] = dataclasses.replace(rows.observations[oid], stopped_at_step=stopped_at)


def _spec(dims: int, directions: tuple[str, ...] = ("minimize",)) -> SearchSpec:
    params = tuple(ParameterSpec(f"x{i}", "double", 0.0, 1.0) for i in range(dims))
    names = tuple(f"y{i}" for i in range(len(directions)))
    return SearchSpec(1, "offline", params, names, directions)  # type: ignore[arg-type]


def _frozen(value: float, *, stopped: bool, trial_id: int, step: int = 3) -> FrozenTrial:
    now = datetime.datetime.now()
    return FrozenTrial(
        number=trial_id,
        state=TrialState.PRUNED if stopped else TrialState.COMPLETE,
        value=None,
        values=None if stopped else [value],
        datetime_start=now,
        datetime_complete=now,
        params={"x0": 0.1 * trial_id},
        distributions={"x0": FloatDistribution(0.0, 1.0)},
        user_attrs={},
        system_attrs={"constraints:failed": 0.0},
        intermediate_values={step: value} if stopped else {},
        trial_id=trial_id,
    )


def test_worst_models_a_stopped_value_no_better_than_the_worst_full_length_value() -> None:
    trials = [
        _frozen(1.0, stopped=False, trial_id=0),
        _frozen(3.0, stopped=False, trial_id=1),
        _frozen(0.1, stopped=True, trial_id=2),  # looks best, but only at step 3
        _frozen(7.0, stopped=True, trial_id=3),  # worse than every full run: kept
    ]
    assert modelled_values(trials, 1.0).tolist() == [1.0, 3.0, 3.0, 7.0]
    # Maximized (sign -1): 7 would be the best, 0.1 is worse than the worst full run (1).
    assert modelled_values(trials, -1.0, stopped="worst").tolist() == [-1.0, -3.0, -0.1, -1.0]
    # Before any full-length value, stopped runs are all there is.
    assert modelled_values(trials[2:], 1.0, stopped="worst").tolist() == [0.1, 7.0]
    assert modelled_values(trials[2:], 1.0).tolist() == [0.1, 7.0]


def test_ranked_models_stopped_runs_by_their_rank_at_their_step_in_the_worse_half() -> None:
    full = [_frozen(float(v), stopped=False, trial_id=v) for v in (1, 2, 3, 4, 5)]
    stopped = [
        _frozen(0.1, stopped=True, trial_id=10),  # the best at its step: near the median
        _frozen(40.0, stopped=True, trial_id=11),  # the worst at its step: near the worst
        _frozen(20.0, stopped=True, trial_id=12, step=9),  # alone at step 9: in the middle
    ]
    values = modelled_values([*full, *stopped], 1.0, stopped="ranked").tolist()
    assert values[:5] == [1.0, 2.0, 3.0, 4.0, 5.0]  # full-length values as they are
    # Two at step 3: percentiles 1/4 and 3/4 of the worse half (levels 0.625, 0.875).
    assert values[5:] == pytest.approx([3.5, 4.5, 4.0])
    # Never the incumbent, and on the full-length values' scale whatever the early values were.
    assert min(values[5:]) >= 3.0 and max(values[5:]) <= 5.0
    # Maximized: the ranking flips with the sign.
    flipped = modelled_values([*full, *stopped], -1.0, stopped="ranked").tolist()
    assert flipped[5:] == pytest.approx([-1.5, -2.5, -2.0])


def test_the_gp_incumbent_is_a_full_length_value() -> None:
    params = (ParameterSpec("x0", "double", 0.0, 1.0),)
    proposer = GaussianProcessProposer(params, minimize=True, seed=0)
    full = [_frozen(1.0 + i, stopped=False, trial_id=i) for i in range(5)]
    stopped = _frozen(-50.0, stopped=True, trial_id=7)
    state = proposer._state([*full, stopped], [])
    observed = state.acquisition.objective.y[:6]
    # The incumbent is the best full run's standardized value, and the stopped run sits at
    # the worst full run's.
    assert state.acquisition.incumbent == observed[0] == observed.min()
    assert observed[5] == observed[4] == observed.max()


def test_a_stopped_run_is_a_pruned_trial_and_counts_as_finished() -> None:
    spec = _spec(2)
    rows = MemoryRows(spec)
    engine = StudySuggester(seed=0)
    for i in range(12):
        sid, a = rows.create_suggestion(engine)
        value = float(a["x0"]) + float(a["x1"])
        rows.observe(sid, {"y0": value})
        if i % 4 == 0:
            rows.observations[max(rows.observations)] = dataclasses.replace(
                rows.observations[max(rows.observations)], stopped_at_step=3
            )
    rows.create_suggestion(engine)
    assert engine.cached_trial_states(1) == {"COMPLETE": 9, "PRUNED": 3, "RUNNING": 1}


def test_a_failed_stopped_run_stays_a_failure() -> None:
    rows = MemoryRows(_spec(2))
    engine = StudySuggester(seed=0)
    for i in range(3):
        _observe(rows, {"x0": 0.1 * i, "x1": 0.5}, {"y0": float(i)})
    _observe(rows, {"x0": 0.9, "x1": 0.9}, None, failed=True, stopped_at=2)
    rows.create_suggestion(engine)
    assert engine.cached_trial_states(1) == {"COMPLETE": 4, "RUNNING": 1}


def _first_proposal(stopped_known: bool, seed: int) -> float:
    """x of the engine's next proposal on a 1-D problem whose full-length runs say the best is
    near 0.3, with three runs near 0.85 stopped at step 1 with far better early values."""
    rows = MemoryRows(_spec(1))
    for x in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.65, 1.0, 0.95):
        _observe(rows, {"x0": x}, {"y0": (x - 0.3) ** 2})
    for x in (0.8, 0.85, 0.9):
        _observe(rows, {"x0": x}, {"y0": -1.0}, stopped_at=1 if stopped_known else None)
    _, assignments = rows.create_suggestion(StudySuggester(seed=seed))
    return float(assignments["x0"])


def test_the_gp_does_not_chase_a_stopped_runs_early_value() -> None:
    for seed in (0, 1, 2):
        # Taken at face value, the early values pull the model to 0.85 ...
        assert abs(_first_proposal(False, seed) - 0.85) < 0.15
        # ... as stopped runs they do not.
        assert abs(_first_proposal(True, seed) - 0.3) < 0.15


def test_tpe_ranks_stopped_runs_after_complete_ones() -> None:
    spec = _spec(12)  # more than 10 parameters: TPE
    rows = MemoryRows(spec)
    engine = StudySuggester(seed=0)
    rng = np.random.default_rng(0)
    for i in range(14):
        point = {f"x{d}": float(v) for d, v in enumerate(rng.random(12))}
        if i < 4:
            _observe(rows, point, {"y0": -100.0}, stopped_at=2)
        else:
            _observe(rows, point, {"y0": float(sum(point.values()))})
    rows.create_suggestion(engine)
    assert engine.cached_trial_states(1) == {"PRUNED": 4, "COMPLETE": 10, "RUNNING": 1}
    # Optuna's own split: with 2 trials below, both are complete ones despite the pruned -100s.
    study = engine._slots[1].study
    assert study is not None
    trials = study.study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    below, _ = optuna.samplers._tpe.sampler._split_trials(study.study, trials, 2)
    assert {t.state for t in below} == {TrialState.COMPLETE}
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert all(t.intermediate_values == {2: -100.0} for t in pruned)


def test_two_objectives_stopped_runs_are_no_better_than_the_worst() -> None:
    spec = _spec(2, ("minimize", "maximize"))
    rows = MemoryRows(spec)
    engine = StudySuggester(seed=0)
    for i in range(10):
        _observe(rows, {"x0": 0.1 * i, "x1": 0.5}, {"y0": float(i), "y1": float(i)})
    _observe(rows, {"x0": 0.95, "x1": 0.1}, {"y0": -5.0, "y1": 50.0}, stopped_at=1)
    _observe(rows, {"x0": 0.97, "x1": 0.1}, {"y0": 20.0, "y1": -3.0}, stopped_at=1)
    rows.create_suggestion(engine)
    study = engine._slots[1].study
    assert study is not None
    values = [t.values for t in study.study.get_trials(states=(TrialState.COMPLETE,))]
    assert values[-2:] == [[9.0, 0.0], [20.0, -3.0]]
    # The worst values that failures are placed at are the full-length runs' only.
    assert study.worst_values == [9.0, 0.0]
