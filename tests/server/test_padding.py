"""Padding points: inside the space, never a pending point, never repeated."""

from __future__ import annotations

import math
import random

from suggestion_server.optimizer.api import ParameterSpec, SearchSpec
from suggestion_server.optimizer.padding import padding_points, point_key

SMALL = SearchSpec(
    experiment_id=1,
    kind="offline",
    parameters=(
        ParameterSpec("a", "int", low=1, high=3),
        ParameterSpec("b", "categorical", categories=("x", "y")),
    ),
    metric_names=("",),
    directions=("maximize",),
)
MIXED = SearchSpec(
    experiment_id=2,
    kind="offline",
    parameters=(
        ParameterSpec("lr", "double", low=1e-5, high=1.0, log=True),
        ParameterSpec("n", "int", low=1, high=1000, log=True),
        ParameterSpec("w", "double", low=-2.0, high=2.0),
    ),
    metric_names=("",),
    directions=("minimize",),
)


def test_a_small_space_is_filled_without_touching_pending_points() -> None:
    taken = {point_key({"a": 1, "b": "x"}), point_key({"a": 2, "b": "y"})}
    pending = set(taken)
    points = padding_points(SMALL, taken, 10, random.Random(1))
    keys = [point_key(p) for p in points]
    assert len(points) == 4  # 6 points, 2 pending: the space runs out
    assert len(set(keys)) == 4 and not set(keys) & pending
    assert taken == pending | set(keys)


def test_points_respect_bounds_and_log_scales() -> None:
    points = padding_points(MIXED, set(), 400, random.Random(2))
    assert len(points) == 400
    for point in points:
        assert 1e-5 <= float(point["lr"]) <= 1.0
        assert isinstance(point["n"], int) and 1 <= point["n"] <= 1000
        assert -2.0 <= float(point["w"]) <= 2.0
    # Log-uniform: about as many learning rates below 1e-3 as above (a uniform draw would put
    # 99.9% above).
    below = sum(1 for p in points if math.log10(float(p["lr"])) < -2.5)
    assert 100 < below < 300
