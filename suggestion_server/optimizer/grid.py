"""Grid search: the points of a grid experiment and which one to suggest next.

The grid is the product of each parameter's values: the integers ``low..high`` (or the
parameter's ``grid`` values) for int, the categories (or ``grid``) for categorical, and the
required ``grid`` values for double. Points are visited in product order (first parameter
slowest), least-visited first, counting observed points (failed ones too: retrying a failed
point before the grid is covered wastes an evaluation) and open suggestions. Once every point has
been visited the grid simply starts another pass, again least-visited first, so a budget larger
than the grid yields replicate evaluations instead of an error.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from suggestion_server.optimizer.api import AssignmentValue, ParameterSpec, SearchSpec
from suggestion_server.optimizer.space import MAX_GRID_POINTS, distribution_for, value_within

GridPoint = tuple[AssignmentValue, ...]


def _axis(param: ParameterSpec) -> tuple[AssignmentValue, ...]:
    distribution = distribution_for(param)
    where = f"parameter {param.name!r} ({param.type})"
    if param.grid:
        values: list[AssignmentValue] = []
        for raw in param.grid:
            value = value_within(raw, distribution)
            if value is None:
                raise ValueError(
                    f"{where}: grid value {raw!r} is outside the parameter's range or type"
                )
            if value not in values:
                values.append(value)
        return tuple(values)
    if param.type == "double":
        raise ValueError(
            f"{where}: a grid experiment needs explicit grid values for every double parameter"
        )
    if param.type == "int":
        low, high = int(param.low or 0), int(param.high or 0)  # present: distribution_for
        size = high - low + 1
        if size > MAX_GRID_POINTS:
            raise ValueError(f"{where}: {size} grid values, at most {MAX_GRID_POINTS} supported")
        return tuple(range(low, high + 1))
    return tuple(param.categories)


@dataclass(frozen=True)
class Grid:
    """The grid of one experiment: parameter names and each one's values, in order."""

    names: tuple[str, ...]
    axes: tuple[tuple[AssignmentValue, ...], ...]
    members: tuple[frozenset[AssignmentValue], ...]
    size: int

    def visit_counts(self, visited: Iterable[Mapping[str, AssignmentValue]]) -> Counter[GridPoint]:
        """How often each point of the grid occurs among ``visited`` parameter sets."""
        counts: Counter[GridPoint] = Counter()
        for params in visited:
            if all(name in params for name in self.names):
                point = tuple(params[name] for name in self.names)
                if all(value in member for value, member in zip(point, self.members)):
                    counts[point] += 1
        return counts

    def next_point(self, counts: Counter[GridPoint]) -> dict[str, AssignmentValue]:
        """The first point in product order among the least-visited points."""
        fewest = 0 if len(counts) < self.size else min(counts.values())
        for point in itertools.product(*self.axes):
            if counts.get(point, 0) == fewest:
                return dict(zip(self.names, point))
        raise RuntimeError("a grid point with the fewest visits always exists")


def grid_for(spec: SearchSpec) -> Grid:
    """The grid of a ``grid`` experiment; ``ValueError`` naming the field if it is not usable."""
    axes = tuple(_axis(param) for param in spec.parameters)
    size = math.prod(len(axis) for axis in axes)
    if size > MAX_GRID_POINTS:
        raise ValueError(f"parameters: the grid has {size} points, at most {MAX_GRID_POINTS}")
    return Grid(
        names=tuple(p.name for p in spec.parameters),
        axes=axes,
        members=tuple(frozenset(axis) for axis in axes),
        size=size,
    )


# Finite spaces up to this size are enumerated to find a point no open suggestion holds.
MAX_ENUMERATED_POINTS = 100_000


def _finite_axis(param: ParameterSpec) -> tuple[AssignmentValue, ...] | None:
    if param.type == "categorical":
        return tuple(param.categories)
    if param.type == "int" and param.low is not None and param.high is not None:
        return tuple(range(int(param.low), int(param.high) + 1))
    return None  # a double is a continuum


_REJECTION_TRIES = 32


def free_point(
    spec: SearchSpec,
    taken: set[tuple[tuple[str, AssignmentValue], ...]],
    rng: random.Random,
) -> dict[str, AssignmentValue] | None:
    """A uniformly random point of a finite space whose key is not in ``taken``, if any.

    Keys are ``tuple(sorted(params.items()))``. None for continuous spaces (collisions there are
    negligible), for spaces too large to enumerate, and when every point is taken.
    """
    names = [p.name for p in spec.parameters]
    axes: list[tuple[AssignmentValue, ...]] = []
    for param in spec.parameters:
        axis = _finite_axis(param)
        if axis is None:
            return None
        axes.append(axis)
    size = math.prod(len(axis) for axis in axes)
    if size <= len(taken) or size > MAX_ENUMERATED_POINTS:
        return None
    # Rejection sampling is uniform over the free points too, and while most of the space is
    # free it avoids enumerating all of it (24,000 points: milliseconds per proposal at scale).
    for _ in range(_REJECTION_TRIES):
        point = tuple(rng.choice(axis) for axis in axes)
        if tuple(sorted(zip(names, point))) not in taken:
            return dict(zip(names, point))
    free = [
        point for point in itertools.product(*axes) if tuple(sorted(zip(names, point))) not in taken
    ]
    return dict(zip(names, rng.choice(free))) if free else None
