"""What keeps the Gaussian process useful to a fleet when its model is poor.

Measured on the broad benchmark (docs/benchmarks.md, "Broad benchmark"; every default here was
chosen on its dev split): on rugged functions the GP explains much of the data as noise, and the
kriging believer, conditioning in-flight points at that noise, left their uncertainty almost
whole, so parallel workers were handed near copies of each other's points (8.4 % of all
suggestions, two thirds in the worst run, on the 2-D BBOB functions with 8 workers); and where
the model is lost the engine could do worse than random search.

- ``exact_believer``: believed points are values of the latent function (no noise), so their
  uncertainty collapses whatever noise the model fitted.
- ``pending_spacing``: no proposal lands within this fraction of the range, in every dimension
  of the unit cube (log scale for log parameters), of an open suggestion. The broad benchmark
  counts 0.1 % as a near-duplicate. Refining near finished points stays allowed.
- ``explore_every``: every n-th proposal is space-filling whatever the model says (0: never).
  On the dev split's 2-D functions (8 workers, 80 evaluations, 5 instances) every 5th cut the
  functions where the engine's median was worse than random search's from 2 (attractive
  sector, Griewank-Rosenbrock) to 1 and left the rest within the seeds' spread; a share of 1 in
  8, and 1 in 8 with ``lost_below`` 0.3, did no better.
- ``lost_below``: when the leave-one-out predictions of the objective's model correlate with the
  observed values less than this, the model is taken as lost and the point is space-filling.
  Off: on the dev split it changed nothing measurable (adaptively placed points make even pure
  noise look predictable: correlations of 0.5-0.8 on a noise objective were measured).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.spatial import cKDTree

StoppedValues = Literal["ranked", "worst"]

# Space-filling points: the farthest from every known point among this many random ones (a few:
# many would push them all onto the boundary).
_POOL = 16


@dataclass(frozen=True)
class ProposerSettings:
    """The safeguards of ``GaussianProcessProposer`` (see module doc)."""

    pending_spacing: float = 2e-3
    exact_believer: bool = True
    explore_every: int = 5
    lost_below: float = -math.inf
    # The leave-one-out check needs this many finished points to mean anything.
    lost_min_points: int = 10
    # How runs stopped early are modelled (proposer.modelled_values). "ranked" made ASHA on the
    # learning-curve benchmark's SGD run 1,917 trials with 32 full-length ones instead of ~730
    # and 85, and a worse best (seed 0, docs/benchmarks.md "learning-curves"): the bad regions'
    # terrible early values, mapped onto the full-length values' scale, no longer repel the model.
    stopped_values: StoppedValues = "worst"

    def explores(self, finished: int, asked: int, loo: float) -> bool:
        """Whether this proposal (``asked`` trials so far) should be space-filling."""
        if self.explore_every > 0 and asked % self.explore_every == self.explore_every - 1:
            return True
        return finished >= self.lost_min_points and loo < self.lost_below


def space_filling_point(
    random_points: np.ndarray,
    feasible: Callable[[np.ndarray], np.ndarray],
    known: np.ndarray,
) -> np.ndarray | None:
    """Among ``random_points`` (already snapped) the feasible one farthest from every ``known``
    point; None when none is feasible."""
    pool = random_points[feasible(random_points)]
    if not len(pool):
        return None
    if not len(known):
        return np.asarray(pool[0])
    gaps, _ = cKDTree(known).query(pool, k=1)
    return np.asarray(pool[int(np.argmax(gaps))])


SPACE_FILLING_POOL = _POOL
