"""Search spaces: validating a ``SearchSpec`` and mapping it to Optuna distributions.

Stored assignments are checked against the *current* distributions before they reach Optuna
(``create_trial`` rejects values outside a distribution). A value that no longer fits (bounds
narrowed, a category removed, a parameter added later, a manual observation out of range) is
dropped from that trial rather than clamped: clamping would pile invented points onto the new
bounds and mislead the sampler. A trial keeps the parameters that still fit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from suggestion_server.optimizer.api import AssignmentValue, ParameterSpec, SearchSpec
from suggestion_server.optimizer.conditionals import check_conditionals

# Above this many points a grid experiment is refused: enumerating it is not a grid search.
MAX_GRID_POINTS = 1_000_000

_KINDS = ("offline", "random", "grid")
_DIRECTIONS = ("maximize", "minimize")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_bounds(param: ParameterSpec) -> tuple[float, float]:
    where = f"parameter {param.name!r} ({param.type})"
    if param.low is None or param.high is None:
        raise ValueError(f"{where}: low and high are required")
    low, high = param.low, param.high
    if not (_is_number(low) and _is_number(high) and math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{where}: low and high must be finite numbers, got {low!r}, {high!r}")
    if low > high:
        raise ValueError(f"{where}: low ({low}) must not be greater than high ({high})")
    if param.type == "int" and (low != int(low) or high != int(high)):
        raise ValueError(f"{where}: low and high must be integers, got {low!r}, {high!r}")
    if param.log and low <= 0:
        raise ValueError(f"{where}: a log-transformed parameter needs low > 0, got {low}")
    return low, high


def validate_spec(spec: SearchSpec) -> None:
    """Raise ``ValueError`` naming the offending field if the spec cannot be searched."""
    if spec.kind not in _KINDS:
        raise ValueError(f"experiment type must be one of {', '.join(_KINDS)}, got {spec.kind!r}")
    if not spec.parameters:
        raise ValueError("parameters: at least one parameter is required")
    names = [p.name for p in spec.parameters]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"parameters: duplicate names {duplicated}")
    if len(spec.metric_names) not in (1, 2):
        raise ValueError(
            f"metrics: one or two optimized metrics are supported, got {len(spec.metric_names)}"
        )
    if len(spec.directions) != len(spec.metric_names):
        raise ValueError(
            f"metrics: {len(spec.metric_names)} metric names but {len(spec.directions)} directions"
        )
    if len(set(spec.metric_names)) != len(spec.metric_names):
        raise ValueError(f"metrics: duplicate names {list(spec.metric_names)}")
    for direction in spec.directions:
        if direction not in _DIRECTIONS:
            raise ValueError(f"metrics: objective must be maximize or minimize, got {direction!r}")
    for param in spec.parameters:
        if param.type in ("double", "int"):
            _check_bounds(param)
        elif param.type == "categorical":
            if not param.categories:
                raise ValueError(f"parameter {param.name!r} (categorical): no categories")
            if len(set(param.categories)) != len(param.categories):
                raise ValueError(f"parameter {param.name!r} (categorical): duplicate categories")
        else:
            raise ValueError(
                f"parameter {param.name!r}: type must be double, int or categorical, "
                f"got {param.type!r}"
            )
    check_conditionals(spec)


def distribution_for(param: ParameterSpec) -> BaseDistribution:
    """The Optuna distribution of one (validated) parameter."""
    if param.type == "double":
        low, high = _check_bounds(param)
        return FloatDistribution(float(low), float(high), log=param.log)
    if param.type == "int":
        low, high = _check_bounds(param)
        return IntDistribution(int(low), int(high), log=param.log)
    return CategoricalDistribution(param.categories)


def distributions_for(spec: SearchSpec) -> dict[str, BaseDistribution]:
    """Parameter name → Optuna distribution, in the spec's parameter order."""
    return {param.name: distribution_for(param) for param in spec.parameters}


def value_within(value: object, distribution: BaseDistribution) -> AssignmentValue | None:
    """``value`` normalized to the distribution's type, or None if it does not fit."""
    if isinstance(distribution, CategoricalDistribution):
        return value if isinstance(value, str) and value in distribution.choices else None
    if not _is_number(value):
        return None
    number = float(value)  # type: ignore[arg-type]  # checked by _is_number
    if not math.isfinite(number):
        return None
    if isinstance(distribution, IntDistribution):
        if number != int(number) or not distribution.low <= number <= distribution.high:
            return None
        return int(number)
    if isinstance(distribution, FloatDistribution):
        return number if distribution.low <= number <= distribution.high else None
    return None


def params_within(
    assignments: Mapping[str, object], distributions: Mapping[str, BaseDistribution]
) -> dict[str, AssignmentValue]:
    """The assignments that fit the current distributions (others dropped, see module doc)."""
    params: dict[str, AssignmentValue] = {}
    for name, distribution in distributions.items():
        if name in assignments:
            value = value_within(assignments[name], distribution)
            if value is not None:
                params[name] = value
    return params
