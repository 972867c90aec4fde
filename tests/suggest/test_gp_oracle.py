"""The GP (suggestion_server/optimizer/gp/model.py) against scikit-learn's
GaussianProcessRegressor as an oracle, on the targets the proposer hands the model (warped and
standardized; no mean function, so sklearn's zero prior mean and ``normalize_y=False``).

The kernels are the same: σ² Matérn-5/2 with one length scale per dimension is
``ConstantKernel(σ²) * Matern(length_scale=[...], nu=2.5)``. The model adds noise + 1e-8 (its
jitter) to the diagonal and its posterior variance is the latent function's: sklearn's
``alpha=noise + jitter`` does exactly that. Hyperparameters are fixed (``optimizer=None``).

Each comparison also runs against an sklearn model with one hyperparameter 1% off
(``test_*_catches_*``) to show that it fails then.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from suggestion_server.optimizer.gp.model import (
    _JITTER,
    _NOISE_PRIOR,
    _SIGNAL_PRIOR,
    GaussianProcess,
    Hyperparameters,
    _length_prior,
    _neg_log_posterior,
)
from tests.suggest.gp_problems import CASES, probe_points, training_data

# Measured agreement: means 2e-11, variances and covariances 8e-10 relative (near data both
# codes take a difference of nearly equal numbers), log likelihoods 5e-11, gradients 9e-11.
RTOL = 1e-6


def sklearn_posterior(
    x: np.ndarray, y: np.ndarray, hyper: Hyperparameters
) -> GaussianProcessRegressor:
    """sklearn's GP with the model's kernel, noise and jitter, fixed."""
    kernel = ConstantKernel(math.exp(hyper.log_signal), "fixed") * Matern(
        np.exp(hyper.log_lengths), "fixed", nu=2.5
    )
    noise = math.exp(hyper.log_noise) + _JITTER
    return GaussianProcessRegressor(kernel, alpha=noise, optimizer=None).fit(x, y)


def oracle_points(x: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(4000 + seed)
    return np.vstack([probe_points(x, seed), rng.uniform(size=(40, x.shape[1]))])


def check_posterior(seed: int, fitted: bool, oracle_hyper: Hyperparameters | None = None) -> None:
    """Means and variances from every method that computes them (``predict`` on both of its
    distance paths, ``mean``, ``whitened``), covariances between points from ``whitened``'s
    columns, and the prior ``kernel``, against sklearn's."""
    x, y, hyper = training_data(seed, fitted=fitted)
    model = GaussianProcess(x, y, hyper)
    oracle = sklearn_posterior(x, y, oracle_hyper or hyper)
    points = oracle_points(x, seed)
    mean, covariance = oracle.predict(points, return_cov=True)
    variance = np.diag(covariance)
    mean_atol = 1e-9 * float(np.abs(y).max())  # the mean crosses 0
    for with_gradient in (False, True):
        got_mean, got_variance, _, _ = model.predict(points, with_gradient)
        np.testing.assert_allclose(got_mean, mean, rtol=RTOL, atol=mean_atol, err_msg="mean")
        np.testing.assert_allclose(got_variance, variance, rtol=RTOL, err_msg="variance")
    np.testing.assert_allclose(model.mean(points), mean, rtol=RTOL, atol=mean_atol)
    got_mean, got_variance, whitened = model.whitened(points)
    np.testing.assert_allclose(got_mean, mean, rtol=RTOL, atol=mean_atol)
    np.testing.assert_allclose(got_variance, variance, rtol=RTOL)
    # Covariances are the kriging believer's rank-one updates (batch.py); scale: the variances.
    got_covariance = model.kernel(points, points) - whitened.T @ whitened
    scale = np.sqrt(np.outer(variance, variance))
    np.testing.assert_array_less(np.abs(got_covariance - covariance) / scale, RTOL)
    np.testing.assert_allclose(model.kernel(points, x), oracle.kernel_(points, x), rtol=RTOL)


@pytest.mark.parametrize(("seed", "fitted"), CASES)
def test_posterior_matches_sklearn(seed: int, fitted: bool) -> None:
    check_posterior(seed, fitted)


@pytest.mark.parametrize("which", ["length", "signal", "noise"])
def test_posterior_comparison_catches_a_one_percent_error(which: str) -> None:
    _, _, hyper = training_data(3)
    off = math.log(1.01)
    lengths = hyper.log_lengths + (off if which == "length" else 0.0)
    signal = hyper.log_signal + (off if which == "signal" else 0.0)
    noise = hyper.log_noise + (off if which == "noise" else 0.0)
    with pytest.raises(AssertionError):
        check_posterior(3, False, Hyperparameters(lengths, signal, noise))


def log_prior(theta: np.ndarray, d: int) -> tuple[float, np.ndarray]:
    """The fit's log-normal priors as it adds them, in log space: ½ ((θ - μ) / s)² each, with
    no normalizing constants (they do not move the fit), and their gradient."""
    length_mean, length_std = _length_prior(d)
    means = np.array([length_mean] * d + [_SIGNAL_PRIOR[0], _NOISE_PRIOR[0]])
    stds = np.array([length_std] * d + [_SIGNAL_PRIOR[1], _NOISE_PRIOR[1]])
    scaled = (theta - means) / stds
    return 0.5 * float(scaled @ scaled), scaled / stds


def check_log_likelihood(seed: int, fitted: bool, noise_factor: float = 1.0) -> None:
    """The fit's objective minus its priors is sklearn's negative log marginal likelihood,
    exactly (both include the n/2 log 2π), and so are their gradients in log space.

    sklearn's noise is a ``WhiteKernel`` here, so that its gradient has a noise component; the
    jitter stays outside as ``alpha``, as the model keeps it out of its noise gradient."""
    x, y, hyper = training_data(seed, fitted=fitted)
    d = x.shape[1]
    kernel = ConstantKernel(1.0, (1e-12, 1e12)) * Matern(
        np.ones(d), (1e-12, 1e12), nu=2.5
    ) + WhiteKernel(1.0, (1e-12, 1e12))
    oracle = GaussianProcessRegressor(kernel, alpha=_JITTER, optimizer=None).fit(x, y)
    names = [h.name for h in oracle.kernel_.hyperparameters]
    assert names == ["k1__k1__constant_value", "k1__k2__length_scale", "k2__noise_level"]
    rng = np.random.default_rng(5000 + seed)
    centre = hyper.packed()
    for theta in np.vstack([centre, centre + rng.normal(0.0, 0.5, (2, d + 2))]):
        # sklearn's order: signal, lengths, noise.
        sk_theta = np.concatenate([[theta[d]], theta[:d], [theta[d + 1] + math.log(noise_factor)]])
        sk_value, sk_gradient = oracle.log_marginal_likelihood(sk_theta, eval_gradient=True)
        value, gradient = _neg_log_posterior(theta, x, y)
        prior, prior_gradient = log_prior(theta, d)
        np.testing.assert_allclose(value - prior, -sk_value, rtol=RTOL, err_msg="likelihood")
        expected = -np.concatenate([sk_gradient[1 : d + 1], [sk_gradient[0], sk_gradient[-1]]])
        np.testing.assert_allclose(
            gradient - prior_gradient,
            expected,
            rtol=RTOL,
            atol=1e-9 * float(np.abs(expected).max()),
            err_msg="likelihood gradient",
        )


@pytest.mark.parametrize(("seed", "fitted"), CASES)
def test_log_likelihood_matches_sklearn(seed: int, fitted: bool) -> None:
    check_log_likelihood(seed, fitted)


def test_log_likelihood_comparison_catches_a_one_percent_error() -> None:
    with pytest.raises(AssertionError, match="likelihood"):
        check_log_likelihood(3, False, noise_factor=1.01)
