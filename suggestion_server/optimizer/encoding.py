"""Parameters ↔ points of the unit cube, the space the Gaussian process models.

Doubles and ints map linearly (or in log space for ``log`` parameters) onto [0, 1]; an int is
relaxed to a continuous interval half a step wider on each side, so every integer owns an equal
share of [0, 1] and rounding the decoded value picks it. A categorical parameter becomes one
dimension per category (one-hot); the optimizer of the acquisition keeps those dimensions fixed.
A parameter inactive under its conditionals' values sits at its placeholder (conditionals.py)
wherever points are decoded or snapped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from suggestion_server.optimizer.api import AssignmentValue, ParameterSpec
from suggestion_server.optimizer.conditionals import InactiveProjection


@dataclass(frozen=True)
class _Column:
    spec: ParameterSpec
    start: int  # first dimension of this parameter in the encoded vector
    width: int  # 1, or the number of categories
    low: float  # of the (log-)scaled relaxed interval; unused for categoricals
    high: float


def _interval(param: ParameterSpec) -> tuple[float, float]:
    low, high = float(param.low or 0.0), float(param.high or 0.0)
    if param.type == "int":
        low, high = low - 0.5, high + 0.5
        if param.log:
            # Keep the relaxed interval positive so it has a logarithm.
            low = max(low, float(param.low or 1.0) / 2)
    if param.log:
        return math.log(low), math.log(high)
    return low, high


class UnitCubeEncoding:
    """The encoding of one search space; ``dimensions`` is the length of an encoded point."""

    def __init__(self, parameters: Sequence[ParameterSpec]) -> None:
        columns: list[_Column] = []
        start = 0
        for param in parameters:
            if param.type == "categorical":
                columns.append(_Column(param, start, len(param.categories), 0.0, 1.0))
                start += len(param.categories)
            else:
                low, high = _interval(param)
                columns.append(_Column(param, start, 1, low, high))
                start += 1
        self._columns = tuple(columns)
        self.dimensions = start
        mask = np.zeros(start, dtype=bool)
        for column in columns:
            if column.spec.type != "categorical":
                mask[column.start] = True
        # Dimensions the acquisition optimizer may move continuously (not one-hot ones).
        self.continuous_mask = mask
        self.inactive = InactiveProjection(parameters, self)

    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names in encoding order."""
        return tuple(c.spec.name for c in self._columns)

    def block(self, name: str) -> tuple[int, int]:
        """(first dimension, width) of parameter ``name``."""
        column = next(c for c in self._columns if c.spec.name == name)
        return column.start, column.width

    def value_block(self, name: str, value: AssignmentValue) -> np.ndarray:
        """The coordinates of one value of parameter ``name``."""
        column = next(c for c in self._columns if c.spec.name == name)
        block = np.zeros(column.width)
        if column.spec.type == "categorical":
            block[column.spec.categories.index(str(value))] = 1.0
        else:
            number = float(value)
            block[0] = _fraction(
                math.log(number) if column.spec.log else number, column.low, column.high
            )
        return block

    def encode(self, params: Mapping[str, AssignmentValue]) -> np.ndarray:
        """The unit-cube point of a complete assignment."""
        point = np.zeros(self.dimensions)
        for column in self._columns:
            value = params[column.spec.name]
            if column.spec.type == "categorical":
                point[column.start + column.spec.categories.index(str(value))] = 1.0
                continue
            number = float(value)
            scaled = math.log(number) if column.spec.log else number
            point[column.start] = _fraction(scaled, column.low, column.high)
        return point

    def decode(self, point: np.ndarray) -> dict[str, AssignmentValue]:
        """The assignment a unit-cube point stands for (rounded ints, argmax categories)."""
        if self.inactive:
            point = self.inactive.apply(point[None, :])[0][0]
        params: dict[str, AssignmentValue] = {}
        for column in self._columns:
            spec = column.spec
            if spec.type == "categorical":
                block = point[column.start : column.start + column.width]
                params[spec.name] = spec.categories[int(np.argmax(block))]
                continue
            fraction = min(max(float(point[column.start]), 0.0), 1.0)
            scaled = column.low + fraction * (column.high - column.low)
            value = math.exp(scaled) if spec.log else scaled
            low, high = float(spec.low or 0.0), float(spec.high or 0.0)
            if spec.type == "int":
                params[spec.name] = int(min(max(round(value), low), high))
            else:
                params[spec.name] = min(max(value, low), high)
        return params

    def from_fractions(self, fractions: np.ndarray) -> np.ndarray:
        """The point whose parameter i sits at ``fractions[i]`` of its range (a categorical at
        category ``floor(fraction * count)``): maps a low-discrepancy sequence onto the space."""
        point = np.zeros(self.dimensions)
        for column, fraction in zip(self._columns, fractions):
            if column.spec.type == "categorical":
                point[column.start + min(int(fraction * column.width), column.width - 1)] = 1.0
            else:
                point[column.start] = fraction
        return point

    def random_points(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` uniform points (one random category per categorical)."""
        points = rng.random((count, self.dimensions))
        return self.with_valid_categories(points, rng)

    def with_valid_categories(self, points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``points`` with each one-hot block set to one category (its argmax, ties at random)."""
        for column in self._columns:
            if column.spec.type != "categorical":
                continue
            block = points[:, column.start : column.start + column.width]
            noise = rng.random(block.shape) * 1e-9
            chosen = np.argmax(block + noise, axis=1)
            block[:] = 0.0
            block[np.arange(len(points)), chosen] = 1.0
        return points

    def snapped(self, points: np.ndarray) -> np.ndarray:
        """Points moved onto what they decode to (ints rounded): the acquisition is judged
        where the suggestion will really be, so a point rounding onto an open one looks bad."""
        snapped = points.copy()
        for column in self._columns:
            spec = column.spec
            if spec.type != "int":
                continue
            fraction = np.clip(points[:, column.start], 0.0, 1.0)
            scaled = column.low + fraction * (column.high - column.low)
            value = np.exp(scaled) if spec.log else scaled
            value = np.clip(np.round(value), float(spec.low or 0.0), float(spec.high or 0.0))
            rescaled = np.log(value) if spec.log else value
            width = column.high - column.low
            snapped[:, column.start] = (
                np.clip((rescaled - column.low) / width, 0.0, 1.0) if width > 0 else 0.5
            )
        return self.inactive.apply(snapped)[0] if self.inactive else snapped

    @property
    def categorical_count(self) -> int:
        """How many categorical parameters the space has."""
        return sum(1 for c in self._columns if c.spec.type == "categorical")


def _fraction(value: float, low: float, high: float) -> float:
    if high <= low:
        return 0.5
    return min(max((value - low) / (high - low), 0.0), 1.0)
