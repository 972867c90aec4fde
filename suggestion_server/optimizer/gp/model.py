"""A Gaussian process on the unit cube: Matérn-5/2 kernel with one length scale per dimension.

Hyperparameters (length scales, signal and noise variance) are the posterior mode under
log-normal priors, found with L-BFGS-B from the previous fit and from the prior's mode. The
length-scale prior grows with the dimension (Hvarfner et al., 2024, "Vanilla Bayesian
optimization performs great in high dimensions"): it keeps models of 6-10 dimensions from
over-fitting a few dozen points, where a GP with a flat prior does worse than TPE; its offset
is ours (see ``_LENGTH_PRIOR_OFFSET``).

Targets are standardized by the caller. Posterior means and variances come with their gradients
in the input, which the acquisition optimizer uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_solve, solve_triangular
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

# The matrices here are small (hundreds of rows): multi-threaded BLAS only adds spin-waiting,
# which made an ask 7x slower on a busy 2-core machine (measured). One thread per process.
threadpool_limits(limits=1, user_api="blas")

_SQRT5 = math.sqrt(5.0)
_JITTER = 1e-8
_BELIEVED_JITTER = 1e-6
_LOG_LENGTH_BOUNDS = (math.log(0.005), math.log(50.0))
_LOG_SIGNAL_BOUNDS = (math.log(0.05), math.log(20.0))
_LOG_NOISE_BOUNDS = (math.log(1e-6), math.log(0.5))
_NOISE_PRIOR = (math.log(1e-3), 2.0)
# Hvarfner et al. use √2 here; 3.5 less (length scales ≈ 30x shorter) was clearly better on the
# quality benchmark's problems at 80 evaluations (measured: Hartmann-6, Ackley-5, Styblinski-
# Tang-8 regret 5-20x lower): at small budgets the long prior smooths multimodal functions away.
_LENGTH_PRIOR_OFFSET = math.sqrt(2.0) - 3.5
_SIGNAL_PRIOR = (0.0, 1.0)


@dataclass(frozen=True)
class Hyperparameters:
    """Kernel hyperparameters, as logarithms (the space they are fitted in)."""

    log_lengths: np.ndarray
    log_signal: float
    log_noise: float

    def packed(self) -> np.ndarray:
        return np.concatenate([self.log_lengths, [self.log_signal, self.log_noise]])

    @classmethod
    def unpacked(cls, theta: np.ndarray) -> Hyperparameters:
        return cls(theta[:-2].copy(), float(theta[-2]), float(theta[-1]))


def _length_prior(dimensions: int) -> tuple[float, float]:
    # Mean and deviation of log(length scale), inputs in the unit cube.
    return _LENGTH_PRIOR_OFFSET + 0.5 * math.log(max(dimensions, 1)), math.sqrt(3.0)


def prior_mode(dimensions: int) -> Hyperparameters:
    """Where fitting starts when nothing was fitted before."""
    mean, _ = _length_prior(dimensions)
    # The log-normal's mode in log space is its mean; start a bit shorter so L-BFGS explores.
    start = min(max(mean - 1.0, _LOG_LENGTH_BOUNDS[0]), _LOG_LENGTH_BOUNDS[1])
    return Hyperparameters(np.full(dimensions, start), 0.0, _NOISE_PRIOR[0])


def _scaled_square_diffs(a: np.ndarray, b: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(len(a), len(b), d) squared differences per dimension, divided by length²."""
    diff = (a[:, None, :] - b[None, :, :]) / lengths
    return np.asarray(diff * diff)


def _matern(r: np.ndarray) -> np.ndarray:
    return np.asarray((1.0 + _SQRT5 * r + (5.0 / 3.0) * r * r) * np.exp(-_SQRT5 * r))


def _neg_log_posterior(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    n, d = x.shape
    lengths = np.exp(theta[:d])
    signal, noise = math.exp(theta[d]), math.exp(theta[d + 1])
    per_dim = _scaled_square_diffs(x, x, lengths)
    r = np.sqrt(per_dim.sum(axis=2))
    exp_term = np.exp(-_SQRT5 * r)
    k_signal = signal * (1.0 + _SQRT5 * r + (5.0 / 3.0) * r * r) * exp_term
    k = k_signal + (noise + _JITTER) * np.eye(n)
    try:
        chol = np.linalg.cholesky(k)
    except np.linalg.LinAlgError:
        return 1e25, np.zeros_like(theta)
    alpha = cho_solve((chol, True), y)
    nll = (
        0.5 * float(y @ alpha)
        + float(np.log(np.diag(chol)).sum())
        + 0.5 * n * math.log(2 * math.pi)
    )
    k_inv = cho_solve((chol, True), np.eye(n))
    w = np.outer(alpha, alpha) - k_inv
    grad = np.empty_like(theta)
    common = signal * (5.0 / 3.0) * (1.0 + _SQRT5 * r) * exp_term
    for j in range(d):
        grad[j] = -0.5 * float(np.sum(w * (common * per_dim[:, :, j])))
    grad[d] = -0.5 * float(np.sum(w * k_signal))
    grad[d + 1] = -0.5 * noise * float(np.trace(w))
    # Log-normal priors on lengths, signal and noise (in log space: normal).
    mean, std = _length_prior(d)
    nll += 0.5 * float(np.sum(((theta[:d] - mean) / std) ** 2))
    grad[:d] += (theta[:d] - mean) / std**2
    for index, (prior_mean, prior_std) in ((d, _SIGNAL_PRIOR), (d + 1, _NOISE_PRIOR)):
        nll += 0.5 * ((theta[index] - prior_mean) / prior_std) ** 2
        grad[index] += (theta[index] - prior_mean) / prior_std**2
    return nll, grad


def fit_hyperparameters(
    x: np.ndarray,
    y: np.ndarray,
    start: Hyperparameters | None,
    *,
    restart: bool = False,
    max_iterations: int = 200,
) -> Hyperparameters:
    """The posterior mode of the hyperparameters given standardized targets ``y``."""
    d = x.shape[1]
    bounds = [_LOG_LENGTH_BOUNDS] * d + [_LOG_SIGNAL_BOUNDS, _LOG_NOISE_BOUNDS]
    # From the previous fit alone when there is one (it moves little as points are added; one
    # start halves the cost), and from the prior's mode otherwise or when asked to.
    warm = start is not None and len(start.log_lengths) == d
    starts = [start.packed()] if start is not None and warm else []
    if not warm or restart:
        starts.append(prior_mode(d).packed())
    best: tuple[float, np.ndarray] | None = None
    for theta0 in starts:
        clipped = np.clip(theta0, [b[0] for b in bounds], [b[1] for b in bounds])
        result = minimize(
            _neg_log_posterior,
            clipped,
            args=(x, y),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": max_iterations},
        )
        value = float(result.fun)
        if math.isfinite(value) and (best is None or value < best[0]):
            best = (value, np.asarray(result.x))
    theta = best[1] if best is not None else prior_mode(d).packed()
    return Hyperparameters.unpacked(theta)


class GaussianProcess:
    """The posterior of a GP with fixed hyperparameters, conditioned on ``x``, ``y``.

    Rows from ``exact_from`` on are exact values of the latent function (no observation
    noise): the believed values of in-flight points (see ``conditioned``)."""

    def __init__(
        self, x: np.ndarray, y: np.ndarray, hyper: Hyperparameters, exact_from: int | None = None
    ) -> None:
        self.x = x
        self.y = y
        self.hyper = hyper
        self._exact_from = len(x) if exact_from is None else exact_from
        self._lengths = np.exp(hyper.log_lengths)
        self._signal = math.exp(hyper.log_signal)
        noise = np.full(len(x), math.exp(hyper.log_noise) + _JITTER)
        # Believed points without noise but with a little jitter: a believed point next to an
        # observed one would otherwise make the matrix singular.
        noise[self._exact_from :] = _BELIEVED_JITTER
        k = self._kernel(x, x) + np.diag(noise)
        jitter = 0.0
        for _ in range(6):  # bounded: each try adds ten times more jitter
            try:
                self._chol = np.linalg.cholesky(k + jitter * np.eye(len(x)))
                break
            except np.linalg.LinAlgError:
                jitter = max(jitter * 10, 1e-8)
        else:
            raise np.linalg.LinAlgError("kernel matrix is not positive definite")
        self._alpha = cho_solve((self._chol, True), y, check_finite=False)

    def _kernel(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self._signal * _matern(self._distances(a, b))

    def _distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Scaled distances through one matrix product: several times faster than forming
        every difference when a is the acquisition's thousand candidates."""
        sa, sb = a / self._lengths, b / self._lengths
        squared = (sa * sa).sum(axis=1)[:, None] + (sb * sb).sum(axis=1)[None, :] - 2 * sa @ sb.T
        return np.asarray(np.sqrt(np.maximum(squared, 0.0)))

    def kernel(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Prior covariances between the rows of ``a`` and of ``b``."""
        return self._kernel(a, b)

    def whitened(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Posterior means and variances at ``points`` and L⁻¹ k(X, points) (one column per
        point), from which posterior covariances between the points follow:
        k(a, b) - column(a) · column(b)."""
        ks = self._kernel(points, self.x)
        v = solve_triangular(self._chol, ks.T, lower=True, check_finite=False)
        variance = np.maximum(self._signal - (v * v).sum(axis=0), 1e-12)
        return np.asarray(ks @ self._alpha), variance, np.asarray(v)

    def mean(self, points: np.ndarray) -> np.ndarray:
        """Posterior means at ``points``."""
        return np.asarray(self._kernel(points, self.x) @ self._alpha)

    def conditioned(
        self, points: np.ndarray, values: np.ndarray, exact: bool = False
    ) -> GaussianProcess:
        """The same GP with ``points`` added as observations of ``values`` (``exact``: as
        values of the latent function, without observation noise)."""
        if not exact and self._exact_from < len(self.x):
            raise ValueError("noisy points cannot follow exact ones")
        return GaussianProcess(
            np.vstack([self.x, points]),
            np.concatenate([self.y, values]),
            self.hyper,
            exact_from=self._exact_from if exact else None,
        )

    def loo_correlation(self) -> float:
        """Correlation between the observed values and their leave-one-out predictions
        (Rasmussen & Williams, eq. 5.12: mean_i = y_i - [K^-1 y]_i / [K^-1]_ii, from the one
        Cholesky factor). Near 1 when the model predicts points it has not seen; near 0 or
        below when it only interpolates noise (a rugged function, too few points)."""
        n = self._exact_from
        if n < 3:
            return 1.0
        k_inv = cho_solve((self._chol, True), np.eye(len(self.x)), check_finite=False)
        diagonal = np.diag(k_inv)[:n]
        predicted = self.y[:n] - self._alpha[:n] / diagonal
        if float(np.std(predicted)) == 0.0 or float(np.std(self.y[:n])) == 0.0:
            return 0.0
        return float(np.corrcoef(predicted, self.y[:n])[0, 1])

    def predict(
        self, points: np.ndarray, with_gradient: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Mean, variance and (optionally) their gradients in the input, at ``points``."""
        if with_gradient:
            diff = (points[:, None, :] - self.x[None, :, :]) / self._lengths
            r = np.sqrt((diff * diff).sum(axis=2))
        else:
            r = self._distances(points, self.x)
        exp_term = np.exp(-_SQRT5 * r)
        ks = self._signal * (1.0 + _SQRT5 * r + (5.0 / 3.0) * r * r) * exp_term
        mean = ks @ self._alpha
        v = solve_triangular(self._chol, ks.T, lower=True, check_finite=False)
        variance = np.maximum(self._signal - (v * v).sum(axis=0), 1e-12)
        if not with_gradient:
            return mean, variance, None, None
        beta = solve_triangular(
            self._chol.T, v, lower=False, check_finite=False
        ).T  # K⁻¹ kₛ, one row per point
        # dk/dx = g · (x - xᵢ)/ℓ², with g = -σ² (5/3)(1 + √5 r) e^{-√5 r}
        g = -self._signal * (5.0 / 3.0) * (1.0 + _SQRT5 * r) * exp_term
        scaled_diff = diff / self._lengths  # (x - xᵢ)/ℓ²
        d_mean = np.einsum("mn,mnd->md", g * self._alpha[None, :], scaled_diff)
        d_variance = -2.0 * np.einsum("mn,mnd->md", g * beta, scaled_diff)
        return mean, variance, d_mean, d_variance
