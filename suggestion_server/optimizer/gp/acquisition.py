"""The acquisition function and its optimizer.

Log expected improvement (computed stably far below the incumbent, where plain EI underflows to
zero and gives the optimizer no slope; Ament et al., 2023, "Unexpected improvements to expected
improvement") plus the log probability that each constraint metric is satisfied. Everything is
a minimization of standardized values: the caller negates maximized metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.spatial import cKDTree
from scipy.special import erfcx, log_ndtr

from suggestion_server.optimizer.gp.model import GaussianProcess

_SQRT_HALF_PI = math.sqrt(math.pi / 2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _log_h(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(z Φ(z) + φ(z)) and its derivative Φ(z) / (z Φ(z) + φ(z)), stable for z ≪ 0."""
    log_h = np.empty_like(z)
    slope = np.empty_like(z)
    upper = z > -1.0
    zu = z[upper]
    cdf = np.exp(log_ndtr(zu))
    h = zu * cdf + np.exp(-0.5 * zu * zu - _LOG_SQRT_2PI)
    log_h[upper] = np.log(h)
    slope[upper] = cdf / h
    lower = ~upper
    zl = np.maximum(z[lower], -1e6)
    # h = φ(z) (1 + z √(π/2) erfcx(-z/√2)); the bracket is ≈ 1/z² for z ≪ 0.
    scaled = _SQRT_HALF_PI * erfcx(-zl / math.sqrt(2.0))
    bracket = np.maximum(1.0 + zl * scaled, 1e-300)
    log_h[lower] = -0.5 * zl * zl - _LOG_SQRT_2PI + np.log(bracket)
    slope[lower] = scaled / bracket
    return log_h, slope


def log_expected_improvement(
    mean: np.ndarray, variance: np.ndarray, incumbent: float
) -> np.ndarray:
    """log EI below ``incumbent`` (minimization), without gradients."""
    std = np.sqrt(variance)
    log_h, _ = _log_h((incumbent - mean) / std)
    return np.asarray(np.log(std) + log_h)


def _log_cdf(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log Φ(w) and its derivative φ(w)/Φ(w)."""
    log_cdf = log_ndtr(w)
    return log_cdf, np.exp(-0.5 * w * w - _LOG_SQRT_2PI - log_cdf)


@dataclass
class Acquisition:
    """log EI of ``objective`` below ``incumbent`` (None: no feasible point yet, so only the
    feasibility terms count) plus log P(constraint ≤ 0) for each constraint model."""

    objective: GaussianProcess
    incumbent: float | None
    constraints: Sequence[GaussianProcess] = ()

    def __call__(
        self, points: np.ndarray, with_gradient: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Values (and gradients) at ``points``; larger is better."""
        total = np.zeros(len(points))
        gradient = np.zeros_like(points) if with_gradient else None
        if self.incumbent is not None:
            mean, var, d_mean, d_var = self.objective.predict(points, with_gradient)
            std = np.sqrt(var)
            z = (self.incumbent - mean) / std
            log_h, slope = _log_h(z)
            total += np.log(std) + log_h
            if gradient is not None and d_mean is not None and d_var is not None:
                d_std = d_var / (2.0 * std[:, None])
                d_z = (-d_mean - z[:, None] * d_std) / std[:, None]
                gradient += d_std / std[:, None] + slope[:, None] * d_z
        for model in self.constraints:
            mean, var, d_mean, d_var = model.predict(points, with_gradient)
            std = np.sqrt(var)
            w = -mean / std
            log_cdf, slope = _log_cdf(w)
            total += log_cdf
            if gradient is not None and d_mean is not None and d_var is not None:
                d_std = d_var / (2.0 * std[:, None])
                d_w = (-d_mean - w[:, None] * d_std) / std[:, None]
                gradient += slope[:, None] * d_w
        return total, gradient


def matching(points: np.ndarray, excluded: np.ndarray, radius: float = 1e-9) -> np.ndarray:
    """One boolean per point: whether it is within ``radius`` of one of ``excluded`` in every
    dimension (1e-9: equal).

    A k-d tree under the maximum norm: the pairwise comparison it replaces was a third of an
    ask's time with hundreds of open suggestions (profiled)."""
    if not len(excluded) or not len(points):
        return np.zeros(len(points), dtype=bool)
    gaps, _ = cKDTree(excluded).query(points, k=1, p=np.inf, distance_upper_bound=2 * radius)
    return np.asarray(gaps <= radius)


def maximize_acquisition(
    acquisition: Acquisition,
    candidates: np.ndarray,
    movable: np.ndarray,
    feasible: Callable[[np.ndarray], np.ndarray],
    snap: Callable[[np.ndarray], np.ndarray],
    excluded: np.ndarray,
    local_starts: int = 4,
    max_iterations: int = 40,
    spacing: float = 1e-9,
) -> np.ndarray:
    """The best point found: the best ``candidates`` refined by L-BFGS-B over the ``movable``
    dimensions within [0, 1]. Points are judged where ``snap`` puts them (ints rounded); a
    point is kept only if ``feasible`` accepts it and it is not within ``spacing`` (in every
    dimension) of one of the ``excluded`` points (the open suggestions: on a small discrete
    space a converged model would otherwise propose an open point again and again, and on a
    continuous one a near copy of it), unless every candidate is excluded."""
    candidates = snap(candidates)
    ok = feasible(candidates)
    if not ok.any():
        raise ValueError("no candidate satisfies the linear constraints")
    fresh = ok & ~matching(candidates, excluded, spacing)
    candidates = candidates[fresh if fresh.any() else ok]
    values, _ = acquisition(candidates)
    order = np.argsort(-values)
    best_point, best_value = candidates[order[0]], float(values[order[0]])
    index = np.flatnonzero(movable)
    if index.size == 0:
        return np.asarray(best_point)
    for start in candidates[order[:local_starts]]:
        base = start.copy()

        def negative(u: np.ndarray, base: np.ndarray = base) -> tuple[float, np.ndarray]:
            point = base.copy()
            point[index] = u
            value, grad = acquisition(point[None, :], with_gradient=True)
            assert grad is not None  # noqa: S101 - asked for with_gradient
            return -float(value[0]), -grad[0, index]

        result = minimize(
            negative,
            base[index],
            jac=True,
            method="L-BFGS-B",
            bounds=[(0.0, 1.0)] * index.size,
            options={"maxiter": max_iterations},
        )
        refined = base.copy()
        refined[index] = np.clip(result.x, 0.0, 1.0)
        refined = snap(refined[None, :])[0]
        value = float(acquisition(refined[None, :])[0][0])
        acceptable = (
            feasible(refined[None, :])[0] and not matching(refined[None, :], excluded, spacing)[0]
        )
        if math.isfinite(value) and value > best_value and acceptable:
            best_point, best_value = refined, value
    return np.asarray(best_point)
