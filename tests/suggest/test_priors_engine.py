"""Priors in the engine: the start-up design follows them, the acquisition is weighted by
π(x)^(β/n) with a correct gradient, proposals lean toward the prior while data is scarce, and an
incumbent outside the prior's central region switches the prior off."""

from __future__ import annotations

import numpy as np
import pytest

from suggestion_server.optimizer import priors as priors_module
from suggestion_server.optimizer.api import BetaPrior, NormalPrior, ParameterSpec, SearchSpec
from suggestion_server.optimizer.encoding import UnitCubeEncoding
from suggestion_server.optimizer.gp import proposer as proposer_module
from suggestion_server.optimizer.priors import (
    EVIDENCE_LEVEL,
    PRIOR_STRENGTH,
    STARTUP_PRIOR_EVERY,
    Priors,
    PriorWeighted,
    prior_log_term,
    prior_weight,
    prior_weighted,
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


def test_the_startup_design_covers_the_space_outside_the_prior() -> None:
    """A wrong prior cannot hide the rest of the range from the model: the uniform half of the
    start-up design lands outside the prior's central region, on both sides of it."""
    xs = _startup_xs(NormalPrior(mean=1.2, scale=0.2), count=20)
    outside = xs[np.abs(xs - 1.2) > 3 * 0.2]
    assert len(outside) >= 6
    assert (outside < 0.0).sum() >= 4  # most of [-2, 2] is far below the prior's mean


def test_a_normal_prior_is_truncated_to_the_bounds() -> None:
    xs = _startup_xs(NormalPrior(mean=2.0, scale=1.0), count=20)[0::2]
    assert ((xs >= -2.0) & (xs <= 2.0)).all()
    assert float(np.median(xs)) > 0.8  # the upper half of a normal centred on the bound


def test_prior_weight_decays_with_observations() -> None:
    assert prior_weight(10) == pytest.approx(PRIOR_STRENGTH / 10)
    assert prior_weight(100) == pytest.approx(PRIOR_STRENGTH / 100)
    assert prior_weight(0) == PRIOR_STRENGTH


def test_an_incumbent_outside_the_central_region_contradicts_the_prior() -> None:
    parameters = (
        ParameterSpec("x", "double", low=-2.0, high=2.0, prior=NormalPrior(1.0, 0.4)),
        ParameterSpec("y", "double", low=0.0, high=1.0, prior=BetaPrior(8.0, 2.0)),
    )
    priors = Priors.in_cube(parameters, UnitCubeEncoding(parameters))
    # Cube coordinates: x = 1.0 is 0.75, one prior scale 0.1; Beta(8, 2) has its mode at 0.875.
    assert not priors.contradicted_by(None)
    assert not priors.contradicted_by(np.array([0.75, 0.875]))
    assert not priors.contradicted_by(np.array([0.6, 0.8]))  # 1.5 scales off: inside
    assert priors.contradicted_by(np.array([0.2, 0.875]))  # 5.5 scales off in x
    assert priors.contradicted_by(np.array([0.75, 0.2]))  # deep in Beta(8, 2)'s lower tail
    # The region holds EVIDENCE_LEVEL of the prior's mass: about that share of prior draws.
    rng = np.random.default_rng(0)
    draws = np.column_stack([rng.normal(0.75, 0.1, 4000), rng.beta(8.0, 2.0, 4000)])
    draws = draws[(draws[:, 0] >= 0) & (draws[:, 0] <= 1)]
    inside = np.mean([not priors.contradicted_by(point) for point in draws])
    assert inside == pytest.approx(EVIDENCE_LEVEL, abs=0.015)
    # Only parameters active at the incumbent count.
    assert not priors.contradicted_by(np.array([0.2, 0.875]), np.array([True, False]))


def test_a_contradicted_prior_weighs_nothing() -> None:
    parameters = _spec(NormalPrior(1.2, 0.2)).parameters
    priors = Priors.in_cube(parameters, UnitCubeEncoding(parameters))
    assert prior_weight(10, contradicted=True) == 0.0

    def acquisition(
        x: np.ndarray, with_gradient: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        return x[:, 0], None

    assert prior_weighted(acquisition, priors, 10, contradicted=True) is acquisition
    points = np.random.default_rng(1).uniform(0, 1, size=(5, 2))
    assert not prior_log_term(priors, points, 10, contradicted=True).any()
    assert prior_log_term(priors, points, 10).all()


def test_a_contradicting_incumbent_switches_the_prior_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The prior says x near -1.5; a finished point at x = 1.5 is far better than the flat rest.
    Left on, the prior would pull the proposals toward -1.5 (as in the test above: checked to
    spread them over [-2, 1.2] at this seed); switched off, they go where the data say. (The
    space-filling make-up that follows a contradiction is left out here: tested below.)"""
    monkeypatch.setattr(priors_module, "TOP_UP_CONTRADICTED", False)
    rows = MemoryRows(_spec(NormalPrior(mean=-1.5, scale=0.3)))
    rows.observe(None, {"loss": 0.0}, assignments={"x": 1.5, "y": 0.5})
    xs = _flat_proposals(rows)
    assert float(np.median(np.abs(xs - 1.5))) < 0.5, xs


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


def _flat_proposals(rows: MemoryRows) -> np.ndarray:
    """x of the 11th-16th proposals (after the start-up) on a nearly flat objective."""
    engine = StudySuggester(seed=4)
    xs = []
    for n in range(16):
        sid, assignments = rows.create_suggestion(engine)
        rows.observe(sid, {"loss": 1.0 + 1e-3 * (n % 3)})
        if n >= 10:
            xs.append(float(assignments["x"]))
    return np.array(xs)


def test_proposals_lean_toward_the_prior_while_data_is_scarce() -> None:
    """On a flat objective the acquisition has nothing to prefer: the prior decides."""
    distances = {}
    for label, prior in (("prior", NormalPrior(mean=-1.5, scale=0.3)), ("none", None)):
        xs = _flat_proposals(MemoryRows(_spec(prior)))
        distances[label] = float(np.median(np.abs(xs + 1.5)))
    assert distances["prior"] < 0.5 < distances["none"], distances


def test_priors_are_ignored_where_they_do_not_apply() -> None:
    parameters = (
        ParameterSpec("n", "int", low=1, high=5, prior=NormalPrior(2.0, 1.0)),
        ParameterSpec("lr", "double", low=1e-4, high=1.0, log=True, prior=NormalPrior(0.1, 0.1)),
    )
    assert not Priors.in_cube(parameters, UnitCubeEncoding(parameters))


def _space_filling_asks(monkeypatch: pytest.MonkeyPatch, mean: float) -> list[int]:
    """Which of asks 10-13 (the four after the start-up design; 14 explores anyway) were
    space-filling, with a prior at ``mean`` and the best values near x = 1.5."""
    asks: list[int] = []
    current = [0]
    real = proposer_module.space_filling_point

    def spy(*args: object, **kwargs: object) -> object:
        asks.append(current[0])
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(proposer_module, "space_filling_point", spy)
    rows = MemoryRows(_spec(NormalPrior(mean=mean, scale=0.3)))
    engine = StudySuggester(seed=2)
    for n in range(14):
        current[0] = n
        sid, assignments = rows.create_suggestion(engine)
        rows.observe(sid, {"loss": (float(assignments["x"]) - 1.5) ** 2})
    return asks


def test_a_contradicted_prior_gets_its_startup_points_made_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The prior says x near -1.5, the data say 1.5: the start-up points drawn from the prior
    are made up for with as many space-filling ones, so the model sees a full uniform design."""
    drawn = len(range(0, 10, STARTUP_PRIOR_EVERY))
    assert _space_filling_asks(monkeypatch, -1.5) == list(range(10, 10 + min(drawn, 4)))
    assert _space_filling_asks(monkeypatch, 1.4) == []  # a right prior: the model's own
    monkeypatch.setattr(priors_module, "TOP_UP_CONTRADICTED", False)
    assert _space_filling_asks(monkeypatch, -1.5) == []
