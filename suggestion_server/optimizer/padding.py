"""Padding: uniformly random points of an experiment's space that no pending suggestion holds.

When more suggestions are asked for than the engine can compute (1,000 workers, a model that
takes 50-100 ms per proposal), the pool is topped up with these, served after the engine's
entries, as the open-source SigOpt server pads its optimizer's queue with random suggestions.
They are drawn while the experiment's engine lock is held, against every pending point, so they
never duplicate an open or pooled suggestion; the engine then sees them as pending like any
other.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from suggestion_server.optimizer.api import AssignmentValue, ParameterSpec, SearchSpec
from suggestion_server.optimizer.conditionals import random_conditional_point
from suggestion_server.optimizer.grid import free_point
from suggestion_server.optimizer.linear_constraints import satisfies
from suggestion_server.optimizer.space import distribution_for

PointKey = tuple[tuple[str, AssignmentValue], ...]
# Draws per point before enumerating a finite space for a free point.
DRAWS = 8


def point_key(assignments: Mapping[str, AssignmentValue]) -> PointKey:
    """The identity of a point (assignments as stored, order-independent)."""
    return tuple(sorted(assignments.items()))


def random_value(param: ParameterSpec, rng: random.Random) -> AssignmentValue:
    """One uniformly random value of ``param`` (log-uniform for a log-transformed one)."""
    distribution = distribution_for(param)
    if isinstance(distribution, CategoricalDistribution):
        return str(rng.choice(distribution.choices))
    if isinstance(distribution, IntDistribution):
        if distribution.log:
            value = math.exp(rng.uniform(math.log(distribution.low), math.log(distribution.high)))
            return min(distribution.high, max(distribution.low, round(value)))
        return rng.randint(distribution.low, distribution.high)
    if isinstance(distribution, FloatDistribution):
        low, high = distribution.low, distribution.high
        if distribution.log:
            return math.exp(rng.uniform(math.log(low), math.log(high)))
        return rng.uniform(low, high)
    raise TypeError(f"unexpected distribution {distribution!r}")  # pragma: no cover


def random_point(spec: SearchSpec, rng: random.Random) -> dict[str, AssignmentValue]:
    """One uniformly random point; with conditionals, each conditional first, then only the
    parameters active under them (the point as a suggestion holds it)."""
    if spec.conditionals:
        return random_conditional_point(spec, rng, random_value)
    return {param.name: random_value(param, rng) for param in spec.parameters}


def padding_points(
    spec: SearchSpec, taken: set[PointKey], count: int, rng: random.Random
) -> list[dict[str, AssignmentValue]]:
    """Up to ``count`` random points, none of them in ``taken`` nor repeated (fewer when the
    space runs out); ``taken`` gains their keys."""
    points: list[dict[str, AssignmentValue]] = []
    constraints = spec.linear_constraints
    # Linear constraints may reject most draws: draw more, and never fall back to enumerating
    # (free_point knows nothing of them), so padding never violates one.
    draws = DRAWS * 8 if constraints else DRAWS
    for _ in range(count):
        point = next(
            (
                p
                for p in (random_point(spec, rng) for _ in range(draws))
                if point_key(p) not in taken and satisfies(p, constraints)
            ),
            None,
        )
        if point is None and not constraints and not spec.conditionals:
            # (free_point enumerates every parameter: with conditionals, draws only.)
            point = free_point(spec, taken, rng)
        if point is None:
            break
        taken.add(point_key(point))
        points.append(point)
    return points
