"""Small GP problems shared by the numerical checks (test_gp_numerics.py, test_gp_oracle.py)."""

from __future__ import annotations

import math

import numpy as np

from suggestion_server.optimizer.gp.model import Hyperparameters, fit_hyperparameters
from suggestion_server.optimizer.gp.proposer import _standardized

# (seed, fitted): random hyperparameters for seeds 0-4 (1 to 4 dimensions, 8 to 32 points),
# fitted ones for two of them.
CASES = [(seed, False) for seed in range(5)] + [(2, True), (4, True)]


def training_data(
    seed: int, *, fitted: bool = False
) -> tuple[np.ndarray, np.ndarray, Hyperparameters]:
    """Points, targets as the proposer hands them to the model (warped and standardized), and
    hyperparameters: random within the fit's bounds, or fitted."""
    rng = np.random.default_rng(seed)
    d = 1 + seed % 4
    n = 8 + 6 * seed
    x = rng.uniform(size=(n, d))
    # Skewed, so the warp has work to do, and a little noisy.
    raw = np.exp(2.0 * x[:, 0]) + np.sin(6.0 * x).sum(axis=1) + 0.05 * rng.normal(size=n)
    y = _standardized(raw)
    if fitted:
        return x, y, fit_hyperparameters(x, y, None)
    hyper = Hyperparameters(
        log_lengths=rng.uniform(math.log(0.05), math.log(2.0), d),
        log_signal=float(rng.uniform(-1.5, 1.5)),
        log_noise=float(rng.uniform(math.log(1e-6), math.log(0.3))),
    )
    return x, y, hyper


def probe_points(x: np.ndarray, seed: int) -> np.ndarray:
    """Fourteen points: on three training points, 1e-3 from them, four between training points,
    and four far from them (two corners of the cube, two outside it)."""
    rng = np.random.default_rng(1000 + seed)
    d = x.shape[1]
    on = x[:3]
    near = x[:3] + 1e-3 * rng.normal(size=(3, d))
    between = rng.uniform(size=(4, d))
    far = np.array([np.zeros(d), np.ones(d), np.full(d, 1.5), np.full(d, -0.7)])
    return np.vstack([on, near, between, far])
