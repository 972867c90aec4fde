"""The GP's fleet safeguards (suggestion_server/optimizer/gp/safeguards.py): no near copies of
open suggestions, believed points without noise, space-filling points when the model is lost."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import numpy as np
import pytest

from suggestion_server.optimizer.api import ParameterSpec, SearchSpec
from suggestion_server.optimizer.gp import proposer, safeguards
from suggestion_server.optimizer.gp.batch import believer_picks
from suggestion_server.optimizer.gp.model import (
    GaussianProcess,
    Hyperparameters,
    fit_hyperparameters,
    prior_mode,
)
from suggestion_server.optimizer.gp.safeguards import ProposerSettings, space_filling_point
from suggestion_server.optimizer.suggester import StudySuggester
from tests.suggest.rows import MemoryRows

XY = (
    ParameterSpec("x", "double", low=0.0, high=1.0),
    ParameterSpec("y", "double", low=0.0, high=1.0),
)
SPEC = SearchSpec(1, "offline", XY, ("loss",), ("minimize",))
WORKERS = 8


def _bowl(a: Mapping[str, object]) -> float:
    return (float(a["x"]) - 0.3) ** 2 + (float(a["y"]) - 0.7) ** 2  # type: ignore[arg-type]


def _fleet_near_duplicates(seed: int, asks: int = 70) -> tuple[int, float]:
    """A fleet of 8 (oldest finishes first) on a bowl: how many suggestions came within 0.1 %
    of the range of an open one in both parameters, and the best value found."""
    rows, engine = MemoryRows(SPEC), StudySuggester(seed=seed)
    running: list[tuple[int, dict[str, object]]] = []
    near, best = 0, math.inf
    for _ in range(asks):
        if len(running) == WORKERS:
            sid, done = running.pop(0)
            best = min(best, _bowl(done))
            rows.observe(sid, {"loss": _bowl(done)})
        sid, a = rows.create_suggestion(engine)
        near += any(
            abs(float(a["x"]) - float(b["x"])) <= 1e-3  # type: ignore[arg-type]
            and abs(float(a["y"]) - float(b["y"])) <= 1e-3  # type: ignore[arg-type]
            for _, b in running
        )
        running.append((sid, dict(a)))
    return near, best


def _with_settings(monkeypatch: pytest.MonkeyPatch, **overrides: object) -> None:
    monkeypatch.setattr(
        proposer, "ProposerSettings", functools.partial(safeguards.ProposerSettings, **overrides)
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_a_converging_fleet_gets_no_near_copies_of_open_points(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    near, best = _fleet_near_duplicates(seed)
    assert near == 0
    assert best < 1e-4  # still converges: refining near finished points is allowed

    # Without the spacing the same fleet piles onto the optimum (measured: 40-43 of 70).
    _with_settings(monkeypatch, pending_spacing=0.0)
    near_before, _ = _fleet_near_duplicates(seed)
    assert near_before >= 20


def test_believed_points_are_exact_even_where_the_model_sees_noise() -> None:
    x = np.array([[0.1], [0.4], [0.9]])
    noisy = Hyperparameters(np.array([math.log(0.2)]), 0.0, math.log(0.5))
    model = GaussianProcess(x, np.array([0.0, -1.0, 0.5]), noisy)
    pending = np.array([[0.6]])
    point = np.array([[0.6005]])
    _, before, _, _ = model.predict(point)
    _, as_noisy, _, _ = model.conditioned(pending, model.mean(pending)).predict(point)
    _, as_exact, _, _ = model.conditioned(pending, model.mean(pending), exact=True).predict(point)
    assert as_noisy[0] > 0.3 * before[0]  # with noise 0.5 believing helps little
    assert as_exact[0] < 1e-3 * before[0]


def test_leave_one_out_correlation_tells_a_smooth_function_from_noise() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((40, 2))
    smooth = np.sin(3 * x[:, 0]) + x[:, 1] ** 2
    smooth_std = (smooth - smooth.mean()) / smooth.std()
    fitted = fit_hyperparameters(x, smooth_std, None)
    assert GaussianProcess(x, smooth_std, fitted).loo_correlation() > 0.9
    noise = rng.standard_normal(40)
    fitted = fit_hyperparameters(x, noise, None)
    assert GaussianProcess(x, noise, fitted).loo_correlation() < 0.3


def test_a_lost_model_proposes_space_filling_points(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_settings(monkeypatch, lost_below=0.3, explore_every=0)
    correlation = [0.9]
    monkeypatch.setattr(GaussianProcess, "loo_correlation", lambda self: correlation[0])
    rows, engine = MemoryRows(SPEC), StudySuggester(seed=2)
    sources = []
    for step in range(30):
        correlation[0] = 0.9 if step < 20 else 0.1  # the model follows the data, then not
        sid, _ = rows.create_suggestion(engine)
        rows.observe(sid, {"loss": _bowl(rows.suggestions[sid])})
        sampler = engine._slots[1].study.sampler.model  # type: ignore[union-attr]
        sources.append(sampler.last_source)
    assert set(sources[10:20]) == {"model"}
    assert set(sources[21:]) == {"explore"}


def test_every_nth_proposal_explores() -> None:
    settings = ProposerSettings(explore_every=4)
    assert [settings.explores(20, asked, 1.0) for asked in range(20, 28)] == [
        False,
        False,
        False,
        True,
        False,
        False,
        False,
        True,
    ]
    assert not ProposerSettings().explores(20, 23, 0.9)
    assert ProposerSettings(lost_below=0.3).explores(20, 23, 0.1)
    assert not ProposerSettings(lost_below=0.3).explores(5, 23, 0.1)  # too few points to judge


def test_space_filling_point_is_the_farthest_feasible_one() -> None:
    pool = np.array([[0.1, 0.1], [0.9, 0.9], [0.5, 0.5]])
    known = np.array([[0.0, 0.0], [0.45, 0.5]])
    everything = lambda p: np.ones(len(p), dtype=bool)  # noqa: E731
    point = space_filling_point(pool, everything, known)
    assert point is not None and point.tolist() == [0.9, 0.9]
    nothing = lambda p: np.zeros(len(p), dtype=bool)  # noqa: E731
    assert space_filling_point(pool, nothing, known) is None


def test_batch_picks_keep_their_spacing() -> None:
    x = np.array([[0.1], [0.5], [0.9]])
    model = GaussianProcess(x, np.array([0.0, -1.0, 0.5]), prior_mode(1))
    candidates = np.array([[0.45], [0.4505], [0.451], [0.7], [0.2]])
    picks = believer_picks(model, -1.0, np.zeros(len(candidates)), candidates, 3, spacing=2e-3)
    chosen = candidates[picks, 0]
    gaps = np.abs(chosen[:, None] - chosen[None, :]) + np.eye(len(chosen))
    assert gaps.min() > 2e-3
