"""Every analytic gradient of the GP (suggestion_server/optimizer/gp/) against finite
differences: the hyperparameters' negative log posterior, the posterior mean and variance in the
input, log EI and the constraints' log probabilities (their chain rule alone, then end to end),
the derivatives of log h and log Φ, and the output warp's Jacobian.

A wrong gradient crashes nothing: L-BFGS-B just fits worse hyperparameters or stops short of
the acquisition's maximum. So each check also runs on a gradient made 1% wrong
(``test_*_catches_*``) to show that it fails then.

The posterior itself is checked against scikit-learn in test_gp_oracle.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import numpy as np
import pytest
import scipy.stats
from scipy.special import ndtr

from suggestion_server.optimizer.gp import acquisition as acquisition_module
from suggestion_server.optimizer.gp import proposer
from suggestion_server.optimizer.gp.acquisition import Acquisition, _log_cdf, _log_h
from suggestion_server.optimizer.gp.model import (
    GaussianProcess,
    _neg_log_posterior,
    fit_hyperparameters,
)
from suggestion_server.optimizer.gp.proposer import (
    _YEO_JOHNSON_LAMBDAS,
    _standardized,
    _yeo_johnson,
)
from tests.suggest.gp_problems import CASES, probe_points, training_data

Values = Callable[[np.ndarray], np.ndarray]
Objective = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[float, np.ndarray]]
Prediction = tuple[np.ndarray, np.ndarray, "np.ndarray | None", "np.ndarray | None"]
Predict = Callable[[np.ndarray, bool], Prediction]
Slope = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
Warp = Callable[[np.ndarray, float], np.ndarray]

# Near a training point with little noise the posterior variance is a small difference of large
# numbers (values carry ~1e-9 relative rounding) while log EI there is steep (gradients up to
# 1e8): no one step is small enough for truncation and large enough for rounding everywhere.
# So differences use a five-point stencil (truncation ~ step⁴) at several steps and each point
# is judged at the step that agrees best; a wrong gradient agrees at none of them.
X_STEPS = (1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6)
THETA_STEPS = (1e-2, 1e-3, 1e-4, 1e-5)  # hyperparameters are fitted in log space
RTOL = 1e-5  # a gradient 1% off misses by 1e-2
ATOL = 1e-8  # where a gradient vanishes (far from the data)


def stencil_differences(f: Values, points: np.ndarray, step: float) -> np.ndarray:
    """∂f/∂points by five-point central differences, for f mapping (m, d) rows to m values."""
    gradient = np.empty_like(points)
    for j in range(points.shape[1]):

        def shifted(multiple: float, j: int = j) -> np.ndarray:
            moved = points.copy()
            moved[:, j] += multiple * step
            return f(moved)

        gradient[:, j] = (8.0 * (shifted(1) - shifted(-1)) - (shifted(2) - shifted(-2))) / (
            12.0 * step
        )
    return gradient


def gradient_error(
    analytic: np.ndarray,
    f: Values,
    points: np.ndarray,
    *,
    steps: tuple[float, ...] = X_STEPS,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> float:
    """The worst point's error, each point at its best step, as a fraction of the tolerance's
    scale: max |analytic - numeric| / (max |numeric| + atol / rtol), per point. Below ``rtol``
    means |error| < rtol · |gradient| + atol."""
    per_step = []
    for step in steps:
        numeric = stencil_differences(f, points, step)
        scale = np.abs(numeric).max(axis=1) + atol / rtol
        per_step.append(np.abs(analytic - numeric).max(axis=1) / scale)
    return float(np.min(per_step, axis=0).max())


def assert_gradient(
    analytic: np.ndarray,
    f: Values,
    points: np.ndarray,
    what: str,
    *,
    steps: tuple[float, ...] = X_STEPS,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> float:
    """``gradient_error``, failing with ``what`` in the message when it reaches ``rtol``."""
    error = gradient_error(analytic, f, points, steps=steps, rtol=rtol, atol=atol)
    assert error < rtol, f"{what}: analytic and finite-difference gradients differ by {error:.1e}"
    return error


def check_likelihood_gradient(
    seed: int, fitted: bool, objective: Objective = _neg_log_posterior
) -> float:
    """The fit's objective (negative log marginal likelihood plus the log-normal priors) w.r.t.
    its log hyperparameters (lengths, signal, noise), at the case's and at shifted ones."""
    x, y, hyper = training_data(seed, fitted=fitted)
    rng = np.random.default_rng(2000 + seed)
    centre = hyper.packed()
    thetas = np.vstack([centre, centre + rng.normal(0.0, 0.5, (3, len(centre)))])
    analytic = np.array([objective(theta, x, y)[1] for theta in thetas])

    def values(rows: np.ndarray) -> np.ndarray:
        return np.array([objective(theta, x, y)[0] for theta in rows])

    # A fitted gradient is ~1e-5 (L-BFGS-B's tolerance) on a value ~n: rounding leaves ~1e-9.
    return assert_gradient(
        analytic, values, thetas, f"likelihood, seed {seed}", steps=THETA_STEPS, atol=1e-7
    )


@pytest.mark.parametrize(("seed", "fitted"), CASES)
def test_likelihood_gradient(seed: int, fitted: bool) -> None:
    """Largest error measured: 3e-8; 2e-7 at a fitted optimum, where the gradient vanishes."""
    check_likelihood_gradient(seed, fitted)


def test_likelihood_gradient_check_catches_a_one_percent_error() -> None:
    def wrong(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = _neg_log_posterior(theta, x, y)
        gradient[-1] *= 1.01  # the noise's component alone
        return value, gradient

    with pytest.raises(AssertionError, match="likelihood"):
        check_likelihood_gradient(3, False, wrong)


def check_posterior_gradients(
    seed: int, fitted: bool, predict: Predict | None = None
) -> tuple[float, float]:
    """Posterior mean and variance w.r.t. the input, as ``GaussianProcess.predict`` returns
    them, on, near, between and far from training points."""
    x, y, hyper = training_data(seed, fitted=fitted)
    predict = predict or GaussianProcess(x, y, hyper).predict
    points = probe_points(x, seed)
    _, _, d_mean, d_variance = predict(points, True)
    assert d_mean is not None and d_variance is not None

    def mean(p: np.ndarray) -> np.ndarray:
        return predict(p, True)[0]

    def variance(p: np.ndarray) -> np.ndarray:
        return predict(p, True)[1]

    return (
        assert_gradient(d_mean, mean, points, f"posterior mean, seed {seed}"),
        assert_gradient(d_variance, variance, points, f"posterior variance, seed {seed}"),
    )


@pytest.mark.parametrize(("seed", "fitted"), CASES)
def test_posterior_gradients(seed: int, fitted: bool) -> None:
    """Largest errors measured: mean 2e-8, variance 4e-9."""
    check_posterior_gradients(seed, fitted)


@pytest.mark.parametrize("which", ["mean", "variance"])
def test_posterior_gradient_check_catches_a_one_percent_error(which: str) -> None:
    x, y, hyper = training_data(3)
    model = GaussianProcess(x, y, hyper)

    def wrong(points: np.ndarray, with_gradient: bool) -> Prediction:
        mean, variance, d_mean, d_variance = model.predict(points, with_gradient)
        assert d_mean is not None and d_variance is not None
        if which == "mean":
            return mean, variance, 1.01 * d_mean, d_variance
        return mean, variance, d_mean, 1.01 * d_variance

    with pytest.raises(AssertionError, match=f"posterior {which}"):
        check_posterior_gradients(3, False, wrong)


class ExactPosterior:
    """Stands in for a GP: a point's coordinates ``column`` and ``column + 1`` are the posterior
    mean and log variance there. Their gradients are exact, so the acquisition's own chain rule
    is checked alone, at any z, with no rounding from a kernel matrix."""

    def __init__(self, column: int) -> None:
        self.column = column

    def predict(self, points: np.ndarray, with_gradient: bool = False) -> Prediction:
        mean = points[:, self.column].copy()
        variance = np.exp(points[:, self.column + 1])
        if not with_gradient:
            return mean, variance, None, None
        d_mean, d_variance = np.zeros_like(points), np.zeros_like(points)
        d_mean[:, self.column] = 1.0
        d_variance[:, self.column + 1] = variance
        return mean, variance, d_mean, d_variance


def values_of(acquisition: Acquisition) -> Values:
    """The acquisition's values alone, as a function to difference."""
    return lambda points: acquisition(points)[0]


def check_acquisition_chain_rule() -> dict[str, float]:
    """log EI and log P(constraint ≤ 0) through means and variances with exact gradients:
    means from 3 below to 30 above the incumbent (0) and the threshold (0), variances from 1e-4
    to 4, so z and w run from about -3000 to 300."""
    objective = cast(GaussianProcess, ExactPosterior(0))
    constraints = [cast(GaussianProcess, ExactPosterior(c)) for c in (2, 4)]
    rng = np.random.default_rng(7)
    points = np.empty((60, 6))
    points[:, 0::2] = rng.uniform(-3.0, 30.0, (60, 3))
    points[:, 1::2] = rng.uniform(np.log(1e-4), np.log(4.0), (60, 3))
    points[:6, 0] = np.sqrt(np.exp(points[:6, 1])) * np.array([-0.5, 0.9, 0.99, 1.01, 1.1, 2])
    errors = {}
    for name, acquisition in (
        ("chain rule, log EI", Acquisition(objective, 0.0)),
        ("chain rule, log EI and constraints", Acquisition(objective, 0.0, constraints)),
        ("chain rule, constraints alone", Acquisition(objective, None, constraints)),
    ):
        _, gradient = acquisition(points, with_gradient=True)
        assert gradient is not None
        errors[name] = assert_gradient(gradient, values_of(acquisition), points, name)
    return errors


def test_acquisition_chain_rule() -> None:
    """Largest error measured: 4e-10."""
    check_acquisition_chain_rule()


def acquisitions(seed: int, fitted: bool) -> dict[str, Acquisition]:
    """On the case's GP: log EI alone (incumbent the best value, and 8 below it, where EI
    underflows and log h takes its stable branch), with two constraint models, and the
    constraints alone."""
    x, y, hyper = training_data(seed, fitted=fitted)
    objective = GaussianProcess(x, y, hyper)
    constraints = []
    # Violations (≤ 0 feasible) scaled by their spread as the proposer does, fitted.
    for violation in (x[:, 0] - 0.5, 0.3 - (x * x).sum(axis=1)):
        scaled = violation / (float(np.std(violation)) or 1.0)
        constraints.append(GaussianProcess(x, scaled, fit_hyperparameters(x, scaled, None)))
    best = float(y.min())
    return {
        "log EI": Acquisition(objective, best),
        "log EI far below": Acquisition(objective, best - 8.0),
        "log EI and constraints": Acquisition(objective, best, constraints),
        "constraints alone": Acquisition(objective, None, constraints),
    }


# Near training points of models with noise ~1e-5 the best step still misses by up to 3e-5
# (measured; log EI gradients there reach 1e8). The analytic gradients at those points match a
# 40-digit mpmath evaluation of the same posterior to 4e-8 (checked once): the differences
# are what is inexact. The chain rule above is held to RTOL.
END_TO_END_RTOL = 1e-4


def check_acquisition_gradients(seed: int, fitted: bool) -> dict[str, float]:
    """The acquisition's gradient on real GPs, on, near, between and far from the data."""
    x, _, _ = training_data(seed, fitted=fitted)
    points = probe_points(x, seed)
    errors = {}
    for name, acquisition in acquisitions(seed, fitted).items():
        values, gradient = acquisition(points, with_gradient=True)
        assert gradient is not None and np.isfinite(values).all()
        errors[name] = assert_gradient(
            gradient,
            values_of(acquisition),
            points,
            f"{name}, seed {seed}",
            rtol=END_TO_END_RTOL,
        )
    return errors


@pytest.mark.parametrize(("seed", "fitted"), CASES)
def test_acquisition_gradients(seed: int, fitted: bool) -> None:
    """Largest error measured: 3e-5 on or near training points, 2e-6 elsewhere."""
    check_acquisition_gradients(seed, fitted)


def test_acquisition_probes_reach_both_branches_of_log_h() -> None:
    """The probes of the end-to-end check see z on both sides of -1 (where log h switches
    formula) and far below it."""
    zs = []
    for seed, fitted in CASES:
        x, _, _ = training_data(seed, fitted=fitted)
        for acquisition in acquisitions(seed, fitted).values():
            if acquisition.incumbent is not None:
                mean, variance, _, _ = acquisition.objective.predict(probe_points(x, seed))
                zs.append((acquisition.incumbent - mean) / np.sqrt(variance))
    z = np.concatenate(zs)
    assert (z > -1).sum() >= 20 and (z < -1).sum() >= 20 and z.min() < -100


@pytest.mark.parametrize("check", ["chain rule", "end to end"])
@pytest.mark.parametrize(("slope_of", "term"), [("_log_h", "log EI"), ("_log_cdf", "constraints")])
def test_acquisition_gradient_check_catches_a_one_percent_error(
    monkeypatch: pytest.MonkeyPatch, check: str, slope_of: str, term: str
) -> None:
    """A derivative of log h (the EI term) or of log Φ (a constraint's) 1% off is caught."""
    real: Slope = getattr(acquisition_module, slope_of)

    def wrong(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        value, slope = real(z)
        return value, 1.01 * slope

    monkeypatch.setattr(acquisition_module, slope_of, wrong)
    with pytest.raises(AssertionError, match=term):
        if check == "chain rule":
            check_acquisition_chain_rule()
        else:
            check_acquisition_gradients(3, False)


Z_GRID = np.concatenate(
    [-np.logspace(3.0, 0.0, 40), np.linspace(-1.2, -0.8, 9), np.linspace(-0.7, 6.0, 30)]
)


def check_slope(function: Slope, what: str) -> float:
    """The derivative that a log term returns beside its value, on a grid from -1000 to 6."""
    _, slope = function(Z_GRID)
    # Steps relative to |z|: the values reach -z²/2 = -5e5.
    scale = np.maximum(1.0, np.abs(Z_GRID))
    error = 0.0
    for row, z in enumerate(Z_GRID):
        error = max(
            error,
            assert_gradient(
                slope[row : row + 1, None],
                lambda p: function(p[:, 0])[0],
                np.array([[z]]),
                what,
                steps=tuple(scale[row] * s for s in X_STEPS),
            ),
        )
    return error


def test_log_h_slope() -> None:
    """log(z Φ(z) + φ(z)), log EI's core, and Φ(z) / (z Φ(z) + φ(z)). Largest error measured:
    4e-11."""
    check_slope(_log_h, "log h")


def test_log_h_values_match_the_direct_formula_where_it_is_accurate() -> None:
    """The stable branch (z < -1) agrees with log(z Φ(z) + φ(z)) where float64 still computes
    that (the sum loses about two digits at z = -8), and the branches meet at -1."""
    z = np.linspace(-8.0, 3.0, 221)
    direct = np.log(z * ndtr(z) + scipy.stats.norm.pdf(z))
    np.testing.assert_allclose(_log_h(z)[0], direct, rtol=1e-10)
    below, above = _log_h(np.array([-1.0 - 1e-12, -1.0 + 1e-12]))[0]
    assert abs(below - above) < 1e-10


def test_log_cdf_slope() -> None:
    """log Φ(w), a constraint's log probability, and φ(w)/Φ(w). Largest error measured:
    3e-11."""
    check_slope(_log_cdf, "log cdf")


@pytest.mark.parametrize("function", [_log_h, _log_cdf])
def test_slope_check_catches_a_one_percent_error(function: Slope) -> None:
    def wrong(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        value, slope = function(z)
        return value, 1.01 * slope

    with pytest.raises(AssertionError, match="scaled"):
        check_slope(wrong, "scaled")


def check_warp_jacobian(warp: Warp = _yeo_johnson) -> float:
    """The Yeo-Johnson warp's log Jacobian as ``_standardized`` writes it in the likelihood it
    picks lambda by, (lambda - 1) sign(z) log(1 + |z|), against differences of ``warp``, for
    every lambda on its grid (0 and 2 take their own branches)."""
    z = np.concatenate([np.linspace(-4.0, -0.01, 25), np.linspace(0.01, 4.0, 25)])
    error = 0.0
    for lam in _YEO_JOHNSON_LAMBDAS:
        derivative = np.exp((lam - 1.0) * np.sign(z) * np.log1p(np.abs(z)))

        def warped(p: np.ndarray, lam: float = float(lam)) -> np.ndarray:
            return warp(p[:, 0], lam)

        error = max(
            error,
            assert_gradient(
                derivative[:, None],
                warped,
                z[:, None],
                f"warp, lambda {lam:.1f}",
                steps=(1e-3, 1e-4),  # a step never crosses 0 (|z| ≥ 0.01), where ψ'' jumps
            ),
        )
    return error


def test_warp_jacobian() -> None:
    """Largest error measured: 4e-12."""
    check_warp_jacobian()


def _warp_off_by_one_percent(values: np.ndarray, lam: float) -> np.ndarray:
    out = _yeo_johnson(values, lam)
    return np.where(values >= 0, 1.01 * out, out)


def test_warp_jacobian_check_catches_a_one_percent_error() -> None:
    with pytest.raises(AssertionError, match="warp"):
        check_warp_jacobian(_warp_off_by_one_percent)


def check_warp_choice(seed: int) -> None:
    """``_standardized`` against scipy: standardize, pick lambda on the same grid by scipy's
    Yeo-Johnson log-likelihood (the same Jacobian term), warp with scipy, standardize again."""
    rng = np.random.default_rng(3000 + seed)
    raw = [
        rng.lognormal(0.0, 1.5, 40),  # heavy right tail
        -rng.lognormal(0.0, 1.0, 30),  # heavy left tail
        rng.normal(size=25),
        np.concatenate([rng.normal(size=20), [30.0]]),  # one outlier
    ][seed]
    z = (raw - raw.mean()) / raw.std()
    likelihoods = [scipy.stats.yeojohnson_llf(lam, z) for lam in _YEO_JOHNSON_LAMBDAS]
    warped = scipy.stats.yeojohnson(z, float(_YEO_JOHNSON_LAMBDAS[np.argmax(likelihoods)]))
    expected = (warped - warped.mean()) / warped.std()
    np.testing.assert_allclose(_standardized(raw), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_warp_matches_scipy(seed: int) -> None:
    check_warp_choice(seed)


def test_warp_comparison_catches_a_wrong_warp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proposer, "_yeo_johnson", _warp_off_by_one_percent)
    with pytest.raises(AssertionError):
        check_warp_choice(0)
