"""Many proposals from one model: the kriging believer on a fixed set of candidates.

A saturated fleet asks for more suggestions than full proposals can deliver (each maximizes the
acquisition with gradient steps: tens of milliseconds). This picks a batch instead: the best
candidate by the acquisition, then the model believes that pick at its own prediction (as it
does for every open suggestion) and picks again. Believing a point leaves the posterior mean
unchanged and shrinks the variance by a rank-one term, so each further pick costs one
covariance column over the candidates (about a millisecond for thousands of candidates) rather
than a new model. Constraint probabilities are taken as they were at the start of the batch.
"""

from __future__ import annotations

import math

import numpy as np

from suggestion_server.optimizer.gp.acquisition import log_expected_improvement
from suggestion_server.optimizer.gp.model import GaussianProcess

_MIN_VARIANCE = 1e-12


def believer_picks(
    model: GaussianProcess,
    incumbent: float | None,
    fixed_log: np.ndarray,
    candidates: np.ndarray,
    count: int,
    spacing: float = 0.0,
) -> list[int]:
    """Indices of up to ``count`` distinct ``candidates``, in pick order.

    ``model`` is the objective's GP (minimized, already believing the open points), ``incumbent``
    the best value to improve on (None: no feasible point yet, only ``fixed_log`` counts), and
    ``fixed_log`` a per-candidate log term added to the score (the constraints' log
    probabilities). A candidate is never picked twice, nor one within ``spacing`` of an earlier
    pick in every dimension (a near copy of a point the fleet will be evaluating).
    """
    if count <= 0 or not len(candidates):
        return []
    mean, variance, whitened = model.whitened(candidates)
    variance = variance.copy()
    available = np.ones(len(candidates), dtype=bool)
    count = min(count, len(candidates))
    believed = np.zeros((count, len(candidates)))  # rank-one covariance updates, one per pick
    picks: list[int] = []
    for _ in range(count):
        score = fixed_log.copy()
        if incumbent is not None:
            score += log_expected_improvement(mean, variance, incumbent)
        score[~available] = -np.inf
        pick = int(np.argmax(score))
        if not math.isfinite(float(score[pick])):
            break
        picks.append(pick)
        available[pick] = False
        if spacing > 0:
            gaps = np.abs(candidates - candidates[pick]).max(axis=1)
            available &= gaps > spacing
        covariance = model.kernel(candidates, candidates[pick : pick + 1])[:, 0]
        covariance -= whitened.T @ whitened[:, pick]
        done = believed[: len(picks) - 1]
        covariance -= done.T @ done[:, pick]
        update = covariance / math.sqrt(max(float(variance[pick]), _MIN_VARIANCE))
        believed[len(picks) - 1] = update
        variance = np.maximum(variance - update * update, _MIN_VARIANCE)
        if incumbent is not None:
            incumbent = min(incumbent, float(mean[pick]))
    return picks
