"""Priors on doubles: where the user believes the optimum lies, used twice.

- **Start-up design.** Every ``STARTUP_PRIOR_EVERY``-th start-up point (the 1st, 3rd, ...)
  takes a prior's parameter through the prior's inverse CDF (the normal truncated to the
  bounds): spread evenly *under the prior*, dense near a normal prior's mean. The others stay
  uniform, so the model sees the whole range even when the prior is wrong (measured on Branin
  with a wrong prior, 6 seeds: every start-up point from the prior left 1.6-2.3x this mix's
  median regret at 40 observations).
- **Made up for when contradicted.** Once the incumbent contradicts the prior (below), the
  first proposals after the start-up design are space-filling, as many as the design drew from
  the prior (``top_up_until``; 5 of 10): the model then has the uniform design it would have
  without a prior, plus the prior's points. A right prior is seldom contradicted and then pays
  nothing; a wrong one pays those evaluations.
- **Model.** The acquisition is multiplied by the prior density raised to β/n, n the finished
  observations (πBO: Hvarfner et al., 2022, "πBO: Augmenting acquisition functions with user
  beliefs for Bayesian optimization"); in log space, log EI + (β/n) Σ log π_i(x_i). Early on the
  prior steers proposals to where the user expects the optimum; its pull fades as observations
  accumulate, so a wrong prior costs some evaluations but cannot hold the search (πBO keeps EI's
  convergence rate whatever the prior). β = ``PRIOR_STRENGTH`` = 5: the paper's rule β ≈ N/10
  for a budget of N evaluations at N = 50; chosen between 5 and 10 on the priors benchmark
  (docs/benchmarks.md), where 10 gained little more from a right prior and lost more to a
  wrong one.
- **Switched off by contradicting evidence.** β/n fades too slowly to undo a wrong prior that
  pulled the early search toward a poor basin (on Hartmann-6 a prior far from the optimum left
  the search in a local minimum on every seed). So the weight is zero while the incumbent (the
  best finished feasible point) lies outside the prior's central region holding
  ``EVIDENCE_LEVEL`` of its mass: the data then say the best is elsewhere than the user
  believed, and the model's own acquisition decides. The region is
  {x : Σ z_i² ≤ χ²_k(level)}, z_i = Φ⁻¹(F_i(x_i)) with F_i the prior's CDF (k priors active at
  the point; for a normal prior z_i is about the distance from the mean in scales), so it holds
  that mass under the prior whatever the priors' kinds. The test is stateless, judged anew at
  each ask from the rows: a later incumbent back inside turns the prior on again. A right prior
  keeps its weight as long as the best points are where it said. It cannot tell a prior that
  points at a good local optimum from a right one (the data agree with it there).
  ``EVIDENCE_LEVEL`` = 0.9 was chosen between 0.9 and 0.99 on development problems with priors
  placed as the benchmark's (Hartmann-3 and Styblinski-Tang 8-D; not Branin or Hartmann-6,
  which report it; runs in benchmarks/data/priors_dev_runs.jsonl): both kept a right prior's
  gain; 0.9 lost a little less to a wrong one. On Hartmann-6 the switch alone freed 4 of 20
  runs with a wrong prior from a local minimum (13 of 20 end near the optimum without a
  prior). A likely cause: the start-up points drawn from the wrong prior left the model half
  the uniform design it has without one, hence the make-up above.
- **Chosen on the development problems** (10 seeds, median regret at 80): the make-up
  (``TOP_UP_CONTRADICTED``) against a quarter of the start-up design from the prior, and both
  together. Hartmann-3 with a wrong prior: 3.9e-06 with the make-up, 6.4e-06 a quarter,
  5.8e-06 both, 7.8e-06 before, 4.5e-06 without a prior; a right prior's gain kept by all
  (after 20 observations the make-up keeps it whole: 0.02 against 0.044 and 0.037 for the
  quarter designs). Styblinski-Tang's wrong prior sits on its second-best basin, where the
  data agree with it: 92-98 for all, 100 before, 45 without a prior. Dropped earlier: every
  other model proposal ignoring the prior, and the prior's start-up points always on top of
  a full uniform design (they cut a right prior's gain on Styblinski-Tang).

Densities are taken in the unit cube (a linear map of a double without log transformation, the
only parameters that may carry a prior); their normalizing constants do not move an argmax.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta as beta_distribution
from scipy.stats import chi2, norm, truncnorm

from suggestion_server.optimizer.api import BetaPrior, NormalPrior, ParameterSpec
from suggestion_server.optimizer.conditionals import CubeLayout, ScoredPoints

PRIOR_STRENGTH = 5.0
# The prior's mass in the central region the incumbent must lie in for the prior to count.
EVIDENCE_LEVEL = 0.9
# Every this many start-up points (the 0th, the STARTUP_PRIOR_EVERY-th, ...) come from the prior.
STARTUP_PRIOR_EVERY = 2
# Once the incumbent contradicts the prior, as many space-filling points as the start-up design
# drew from the prior are proposed before the model's, so the model sees a full uniform design.
TOP_UP_CONTRADICTED = True
# Beta densities with a shape below 1 are infinite at the bounds: judged this far inside.
_EDGE = 1e-6


@dataclass(frozen=True)
class _CubePrior:
    """One parameter's prior in unit-cube coordinates of its dimension ``dim``."""

    index: int  # the parameter's position (for start-up fractions)
    dim: int
    normal: tuple[float, float] | None  # (mean, scale) in the cube
    beta: tuple[float, float] | None  # (a, b)

    def log_density(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log π(u) up to a constant, and its derivative."""
        if self.normal is not None:
            mean, scale = self.normal
            z = (u - mean) / scale
            return -0.5 * z * z, -z / scale
        assert self.beta is not None  # noqa: S101 - one of the two is set
        a, b = self.beta
        inside = np.clip(u, _EDGE, 1.0 - _EDGE)
        value = (a - 1.0) * np.log(inside) + (b - 1.0) * np.log1p(-inside)
        slope = (a - 1.0) / inside - (b - 1.0) / (1.0 - inside)
        return value, np.where(inside == u, slope, 0.0)

    def z_score(self, u: np.ndarray) -> np.ndarray:
        """Φ⁻¹(F(u)): where ``u`` sits in the prior's mass, as a standard normal deviate."""
        if self.normal is not None:
            mean, scale = self.normal
            low, high = (0.0 - mean) / scale, (1.0 - mean) / scale
            cdf = truncnorm.cdf(u, low, high, loc=mean, scale=scale)
        else:
            assert self.beta is not None  # noqa: S101 - one of the two is set
            cdf = beta_distribution.cdf(u, *self.beta)
        return np.asarray(norm.ppf(np.clip(cdf, 1e-12, 1.0 - 1e-12)), dtype=float)

    def quantile(self, q: float) -> float:
        """The cube coordinate at which the prior's CDF reaches ``q``."""
        q = min(max(q, 1e-9), 1.0 - 1e-9)
        if self.normal is not None:
            mean, scale = self.normal
            low, high = (0.0 - mean) / scale, (1.0 - mean) / scale
            return float(truncnorm.ppf(q, low, high, loc=mean, scale=scale))
        assert self.beta is not None  # noqa: S101 - one of the two is set
        return float(beta_distribution.ppf(q, *self.beta))


class Priors:
    """The priors of a space's parameters, in the unit cube of its encoding."""

    def __init__(self, parameters: Sequence[ParameterSpec], dims: Sequence[int]) -> None:
        """``dims[i]``: the cube dimension of ``parameters[i]`` (its first one)."""
        priors = []
        for index, (param, dim) in enumerate(zip(parameters, dims)):
            prior = param.prior
            if prior is None or param.type != "double" or param.log:
                continue
            low, high = float(param.low or 0.0), float(param.high or 0.0)
            if not high > low:
                continue
            if isinstance(prior, NormalPrior) and prior.scale > 0:
                width = high - low
                normal = ((prior.mean - low) / width, prior.scale / width)
                priors.append(_CubePrior(index, dim, normal, None))
            elif isinstance(prior, BetaPrior) and prior.shape_a > 0 and prior.shape_b > 0:
                priors.append(_CubePrior(index, dim, None, (prior.shape_a, prior.shape_b)))
        self._priors = tuple(priors)

    @classmethod
    def in_cube(cls, parameters: Sequence[ParameterSpec], layout: CubeLayout) -> Priors:
        """The priors of ``parameters`` in the unit cube ``layout`` encodes them into."""
        return cls(parameters, [layout.block(p.name)[0] for p in parameters])

    def __bool__(self) -> bool:
        return bool(self._priors)

    def log_density(
        self, points: np.ndarray, with_gradient: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Σ log π_i at each point (up to a constant), and its gradient if asked."""
        total = np.zeros(len(points))
        gradient = np.zeros_like(points) if with_gradient else None
        for prior in self._priors:
            value, slope = prior.log_density(points[:, prior.dim])
            total += value
            if gradient is not None:
                gradient[:, prior.dim] += slope
        return total, gradient

    def contradicted_by(
        self, incumbent: np.ndarray | None, inactive: np.ndarray | None = None
    ) -> bool:
        """Whether the incumbent (a unit-cube point; None: none yet) lies outside the prior's
        central region holding ``EVIDENCE_LEVEL`` of its mass, judged on the parameters active
        at it (``inactive``: a mask of its pinned coordinates)."""
        if incumbent is None:
            return False
        spread, count = 0.0, 0
        for prior in self._priors:
            if inactive is not None and inactive[prior.dim]:
                continue
            spread += float(prior.z_score(np.array([incumbent[prior.dim]]))[0] ** 2)
            count += 1
        return count > 0 and spread > float(chi2.ppf(EVIDENCE_LEVEL, count))

    def startup_fractions(self, fractions: np.ndarray, index: int) -> np.ndarray:
        """The per-parameter fractions of start-up point ``index`` (0, 1, ...): for every
        ``STARTUP_PRIOR_EVERY``-th index, those of parameters with a prior taken through the
        prior's inverse CDF; for the others, unchanged (uniform)."""
        mapped = np.array(fractions, dtype=float)
        if index % STARTUP_PRIOR_EVERY:
            return mapped
        for prior in self._priors:
            mapped[prior.index] = prior.quantile(float(fractions[prior.index]))
        return mapped


def top_up_until(priors: Priors | None, n_startup: int) -> int:
    """Trials asked (finished and open) before which a contradicted prior's start-up points are
    made up for with space-filling ones: ``n_startup`` plus those the prior drew; 0 (never)
    without priors or with ``TOP_UP_CONTRADICTED`` off."""
    if not priors or not TOP_UP_CONTRADICTED:
        return 0
    return n_startup + len(range(0, n_startup, STARTUP_PRIOR_EVERY))


def prior_weight(observed: int, contradicted: bool = False) -> float:
    """β/n: the exponent of the prior density after ``observed`` finished observations; zero
    once the incumbent contradicts the prior (``Priors.contradicted_by``)."""
    return 0.0 if contradicted else PRIOR_STRENGTH / max(observed, 1)


class PriorWeighted:
    """An acquisition (log scale) plus the weighted log prior density: πBO's EI · π^(β/n)."""

    def __init__(self, acquisition: ScoredPoints, priors: Priors, weight: float) -> None:
        self._acquisition = acquisition
        self._priors = priors
        self._weight = weight

    def __call__(
        self, points: np.ndarray, with_gradient: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        values, gradient = self._acquisition(points, with_gradient)
        log_prior, prior_gradient = self._priors.log_density(points, with_gradient)
        values = values + self._weight * log_prior
        if gradient is not None and prior_gradient is not None:
            gradient = gradient + self._weight * prior_gradient
        return values, gradient


def prior_weighted(
    acquisition: ScoredPoints, priors: Priors | None, observed: int, contradicted: bool = False
) -> ScoredPoints:
    """``acquisition`` weighted by the priors after ``observed`` observations; itself without
    priors or when the incumbent contradicts them."""
    if not priors or contradicted:
        return acquisition
    assert priors is not None  # noqa: S101 - narrowed for mypy
    return PriorWeighted(acquisition, priors, prior_weight(observed))


def prior_log_term(
    priors: Priors | None, points: np.ndarray, observed: int, contradicted: bool = False
) -> np.ndarray:
    """(β/n) Σ log π_i at each point: the priors' part of a candidate's score (zero without
    priors or when the incumbent contradicts them)."""
    if not priors or contradicted:
        return np.zeros(len(points))
    assert priors is not None  # noqa: S101 - narrowed for mypy
    return prior_weight(observed) * priors.log_density(points)[0]
