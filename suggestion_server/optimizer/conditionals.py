"""Conditional parameters: the space the optimizer models, and what it serves from it.

An experiment's conditionals are categorical choices (``model: svm | forest``); a parameter with
``conditions`` is active only while every condition holds (``gamma`` only for ``svm``). Stored
and served assignments hold every conditional and only the active parameters.

The optimizer models the *unconditioned* space, as the open-source SigOpt server does: each
conditional is one more categorical parameter, and an inactive parameter holds a fixed
placeholder (the last category, the last grid value, or the upper bound), so every trial has
every parameter and two points that differ only in inactive parameters are one point. Rows are
filled with placeholders on their way in (``FilledRows``); proposals are made in that space, put
in canonical form (inactive parameters at their placeholders: ``Conditioning.filled``) and
trimmed to the conditionals and the active parameters on their way out
(``Conditioning.served``). In the Gaussian process's unit cube an inactive parameter's
dimensions are likewise pinned to the placeholder's coordinates (``InactiveProjection``): every
candidate is judged where it will be served, and the acquisition's gradient never moves a
dimension that does not exist for the point.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from suggestion_server.optimizer.api import (
    AssignmentValue,
    ObservationRow,
    OpenSuggestionRow,
    ParameterSpec,
    RowSource,
    SearchSpec,
)


def is_active(param: ParameterSpec, assignments: Mapping[str, AssignmentValue]) -> bool:
    """Whether ``param`` is active under the conditionals' values in ``assignments``."""
    return all(assignments.get(name) in values for name, values in param.conditions)


def placeholder(param: ParameterSpec) -> AssignmentValue:
    """The value an inactive parameter holds in the modelled space (the open-source server's
    choice): its last category, its last grid value, or its upper bound."""
    if param.type == "categorical":
        return param.categories[-1]
    if param.grid:
        return param.grid[-1]
    high = float(param.high if param.high is not None else 0.0)
    return int(high) if param.type == "int" else high


def modelled_spec(spec: SearchSpec) -> SearchSpec:
    """The unconditioned space: the parameters, then each conditional as a categorical
    parameter. ``conditionals`` is kept, so the result is recognized as already modelled."""
    names = {p.name for p in spec.parameters}
    extra = tuple(
        ParameterSpec(name=c.name, type="categorical", categories=c.values)
        for c in spec.conditionals
        if c.name not in names
    )
    return replace(spec, parameters=spec.parameters + extra) if extra else spec


class Conditioning:
    """Filling and trimming assignments of one (modelled) space; the identity without
    conditionals."""

    def __init__(self, spec: SearchSpec) -> None:
        self.conditional_names = tuple(c.name for c in spec.conditionals)
        self._conditioned = tuple(p for p in spec.parameters if p.conditions)
        self._placeholders = {p.name: placeholder(p) for p in self._conditioned}

    def __bool__(self) -> bool:
        return bool(self.conditional_names)

    def filled(self, assignments: Mapping[str, AssignmentValue]) -> dict[str, AssignmentValue]:
        """``assignments`` with every inactive parameter at its placeholder (canonical form)."""
        filled = dict(assignments)
        for param in self._conditioned:
            if not is_active(param, assignments):
                filled[param.name] = self._placeholders[param.name]
        return filled

    def served(self, params: Mapping[str, AssignmentValue]) -> dict[str, AssignmentValue]:
        """What a suggestion holds: the conditionals (as strings) and the active parameters."""
        if not self:
            return dict(params)
        inactive = {p.name for p in self._conditioned if not is_active(p, params)}
        served = {name: value for name, value in params.items() if name not in inactive}
        for name in self.conditional_names:
            served[name] = str(params[name])
        return served


class FilledRows:
    """A ``RowSource`` whose rows carry every parameter: inactive ones at their placeholders."""

    def __init__(self, source: RowSource, conditioning: Conditioning) -> None:
        self._source = source
        self._conditioning = conditioning

    def observations_after(
        self, observation_id: int, known: Container[int] = ()
    ) -> Sequence[ObservationRow]:
        fill = self._conditioning.filled
        return [
            replace(row, assignments=fill(row.assignments))
            for row in self._source.observations_after(observation_id, known)
        ]

    def open_suggestions(self) -> Sequence[OpenSuggestionRow]:
        fill = self._conditioning.filled
        return [
            OpenSuggestionRow(id=row.id, assignments=fill(row.assignments))
            for row in self._source.open_suggestions()
        ]


def random_conditional_point(
    spec: SearchSpec,
    rng: random.Random,
    draw: Callable[[ParameterSpec, random.Random], AssignmentValue],
) -> dict[str, AssignmentValue]:
    """A random point as served: each conditional uniformly, then only the parameters active
    under the values drawn (``draw`` draws one parameter's value)."""
    point: dict[str, AssignmentValue] = {c.name: rng.choice(c.values) for c in spec.conditionals}
    for param in spec.parameters:
        if is_active(param, point):
            point[param.name] = draw(param, rng)
    return point


class CubeLayout(Protocol):
    """What ``InactiveProjection`` reads of a unit-cube encoding."""

    def block(self, name: str) -> tuple[int, int]:
        """(first dimension, width) of a parameter."""
        ...

    def value_block(self, name: str, value: AssignmentValue) -> np.ndarray:
        """The coordinates of one parameter's value."""
        ...


@dataclass(frozen=True)
class _Rule:
    start: int
    width: int
    pinned: np.ndarray  # the placeholder's coordinates
    conditions: tuple[tuple[int, int, np.ndarray], ...]  # (start, width, allowed categories)


class InactiveProjection:
    """Pins each inactive parameter's dimensions of unit-cube points to its placeholder."""

    def __init__(self, parameters: Sequence[ParameterSpec], layout: CubeLayout) -> None:
        by_name = {p.name: p for p in parameters}
        rules = []
        for param in parameters:
            if not param.conditions:
                continue
            conditions = []
            for name, values in param.conditions:
                start, width = layout.block(name)
                categories = by_name[name].categories
                allowed = np.array([i for i, c in enumerate(categories) if c in values])
                conditions.append((start, width, allowed))
            start, width = layout.block(param.name)
            pinned = layout.value_block(param.name, placeholder(param))
            rules.append(_Rule(start, width, pinned, tuple(conditions)))
        self._rules = tuple(rules)

    def __bool__(self) -> bool:
        return bool(self._rules)

    def apply(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pinned copy of ``points``, which of its coordinates were pinned)."""
        pinned = points.copy()
        mask = np.zeros(points.shape, dtype=bool)
        for rule in self._rules:
            active = np.ones(len(points), dtype=bool)
            for start, width, allowed in rule.conditions:
                chosen = np.argmax(points[:, start : start + width], axis=1)
                active &= np.isin(chosen, allowed)
            inactive = ~active
            pinned[inactive, rule.start : rule.start + rule.width] = rule.pinned
            mask[inactive, rule.start : rule.start + rule.width] = True
        return pinned, mask


class ScoredPoints(Protocol):
    """An acquisition: values (and gradients) at points."""

    def __call__(
        self, points: np.ndarray, with_gradient: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]: ...


class OnActiveParameters:
    """An acquisition judged where points will be served: inactive dimensions pinned first, and
    (their value not depending on them) a zero gradient along them."""

    def __init__(self, acquisition: ScoredPoints, projection: InactiveProjection) -> None:
        self._acquisition = acquisition
        self._projection = projection

    def __call__(
        self, points: np.ndarray, with_gradient: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        pinned, mask = self._projection.apply(points)
        values, gradient = self._acquisition(pinned, with_gradient)
        if gradient is not None:
            gradient = np.where(mask, 0.0, gradient)
        return values, gradient


def on_active_parameters(
    acquisition: ScoredPoints, projection: InactiveProjection | None
) -> ScoredPoints:
    """``acquisition`` judged at active parameters only; itself when nothing is conditional."""
    if not projection:
        return acquisition
    assert projection is not None  # noqa: S101 - narrowed for mypy
    return OnActiveParameters(acquisition, projection)


def check_conditionals(spec: SearchSpec) -> None:
    """``ValueError`` naming the field if the conditionals or a parameter's conditions are not
    usable (the spec as given, or as modelled: a conditional may appear as its categorical)."""
    names = [c.name for c in spec.conditionals]
    if len(set(names)) != len(names):
        raise ValueError(f"conditionals: duplicate names {names}")
    by_name = {c.name: c for c in spec.conditionals}
    if by_name and spec.kind == "grid":
        raise ValueError("conditionals: grid experiments cannot have conditionals")
    for conditional in spec.conditionals:
        if len(conditional.values) < 2 or len(set(conditional.values)) != len(conditional.values):
            raise ValueError(f"conditional {conditional.name!r}: needs 2 or more unique values")
    for param in spec.parameters:
        same_name = by_name.get(param.name)
        if same_name is not None and (
            param.type != "categorical" or param.categories != same_name.values or param.conditions
        ):
            raise ValueError(f"parameter {param.name!r}: shares its name with a conditional")
        for name, values in param.conditions:
            known = by_name.get(name)
            if known is None:
                raise ValueError(
                    f"parameter {param.name!r}: condition on unknown conditional {name!r}"
                )
            if not values or not set(values) <= set(known.values):
                raise ValueError(
                    f"parameter {param.name!r}: condition on {name!r} needs values among "
                    f"{list(known.values)}, got {list(values)}"
                )
