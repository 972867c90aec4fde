"""Priors in the engine: the start-up design follows them, the acquisition is weighted by
π(x)^(β/n) with a correct gradient, and proposals lean toward the prior while data is scarce."""

from __future__ import annotations

import numpy as np
import pytest

from suggestion_server.optimizer.api import BetaPrior, NormalPrior, ParameterSpec, SearchSpec
from suggestion_server.optimizer.encoding import UnitCubeEncoding
from suggestion_server.optimizer.priors import (
    PRIOR_STRENGTH,
    Priors,
    PriorWeighted,
    prior_weight,
)
from suggestion_server.optimizer.suggester import StudySuggester
from tests.suggest.rows import MemoryRows


def _spec(prior: NormalPrior | BetaPrior | None) -> SearchSpec:
    return SearchSpec(
        experiment_id=3,
        kind="offline",
        parameters=(
            ParameterSpec("x", "double", low=-2.0, high=2.0, prior=prior),
            ParameterSpec("y", "double", low=0.0, high=1.0),
        ),
        metric_names=("loss",),
        directions=("minimize",),
    )


def _startup_xs(prior: NormalPrior | BetaPrior | None, count: int = 10) -> np.ndarray:
    engine = StudySuggester(seed=1)
    rows = MemoryRows(_spec(prior))
    return np.array([float(rows.create_suggestion(engine)[1]["x"]) for _ in range(count)])


def test_every_other_startup_point_follows_the_prior() -> None:
    xs = _startup_xs(NormalPrior(mean=1.2, scale=0.2))
    from_prior, uniform = xs[0::2], xs[1::2]
    assert abs(float(np.median(from_prior)) - 1.2) < 0.15
    assert (np.abs(from_prior - 1.2) < 0.6).all()  # 3 scales: all five
    assert np.ptp(uniform) > 2.0  # the others spread over [-2, 2]
    assert np.ptp(_startup_xs(None)) > 3.0
    # A beta prior on [-2, 2]: Beta(8, 2) has its mass high (mean 0.8 -> x = 1.2).
    skewed = _startup_xs(BetaPrior(8.0, 2.0))[0::2]
    assert float(np.median(skewed)) > 0.6 and (skewed > -1.0).all()


def test_a_normal_prior_is_truncated_to_the_bounds() -> None:
    xs = _startup_xs(NormalPrior(mean=2.0, scale=1.0), count=20)[0::2]
    assert ((xs >= -2.0) & (xs <= 2.0)).all()
    assert float(np.median(xs)) > 0.8  # the upper half of a normal centred on the bound


def test_prior_weight_decays_with_observations() -> None:
    assert prior_weight(10) == pytest.approx(PRIOR_STRENGTH / 10)
    assert prior_weight(100) == pytest.approx(PRIOR_STRENGTH / 100)
    assert prior_weight(0) == PRIOR_STRENGTH


@pytest.mark.parametrize("prior", [NormalPrior(0.5, 0.4), BetaPrior(0.7, 3.0)])
def test_the_weighted_acquisition_has_the_right_gradient(prior: NormalPrior | BetaPrior) -> None:
    parameters = _spec(prior).parameters
    encoding = UnitCubeEncoding(parameters)
    priors = Priors.in_cube(parameters, encoding)

    def acquisition(
        x: np.ndarray, with_gradient: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        values = np.sin(3 * x[:, 0]) + x[:, 1] ** 2
        gradient = np.stack([3 * np.cos(3 * x[:, 0]), 2 * x[:, 1]], axis=1)
        return values, gradient if with_gradient else None

    weighted = PriorWeighted(acquisition, priors, weight=0.7)
    points = np.random.default_rng(0).uniform(0.05, 0.95, size=(20, 2))
    _, gradient = weighted(points, with_gradient=True)
    assert gradient is not None
    step = 1e-6
    for dim in range(2):
        shift = np.zeros(2)
        shift[dim] = step
        up, _ = weighted(points + shift)
        down, _ = weighted(points - shift)
        np.testing.assert_allclose(gradient[:, dim], (up - down) / (2 * step), rtol=1e-5, atol=1e-6)


def test_proposals_lean_toward_the_prior_while_data_is_scarce() -> None:
    """On a flat objective the acquisition has nothing to prefer: the prior decides."""
    distances = {}
    for label, prior in (("prior", NormalPrior(mean=-1.5, scale=0.3)), ("none", None)):
        engine = StudySuggester(seed=4)
        rows = MemoryRows(_spec(prior))
        xs = []
        for n in range(16):
            sid, assignments = rows.create_suggestion(engine)
            rows.observe(sid, {"loss": 1.0 + 1e-3 * (n % 3)})
            if n >= 10:
                xs.append(float(assignments["x"]))
        distances[label] = float(np.median(np.abs(np.array(xs) + 1.5)))
    assert distances["prior"] < 0.5 < distances["none"], distances


def test_priors_are_ignored_where_they_do_not_apply() -> None:
    parameters = (
        ParameterSpec("n", "int", low=1, high=5, prior=NormalPrior(2.0, 1.0)),
        ParameterSpec("lr", "double", low=1e-4, high=1.0, log=True, prior=NormalPrior(0.1, 0.1)),
    )
    assert not Priors.in_cube(parameters, UnitCubeEncoding(parameters))
