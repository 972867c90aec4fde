"""The contract between the store and the suggestion engine (the Optuna bridge).

The store describes an experiment's search space as a ``SearchSpec`` and gives the engine read
access to the experiment's rows through a ``RowSource``; the engine returns assignments. The engine
keeps its own per-process cache keyed by (experiment id, version); the store bumps the version
whenever rows the engine has seen change (observation updated or deleted, parameters changed), so
the cache is rebuilt. Appended rows need no version bump: the engine reads them incrementally.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, Union

AssignmentValue = Union[float, int, str]
Assignments = Mapping[str, AssignmentValue]


@dataclass(frozen=True)
class NormalPrior:
    """A user's belief that a double's optimum lies near ``mean`` (spread ``scale``), in the
    parameter's own units, truncated to its bounds."""

    mean: float
    scale: float


@dataclass(frozen=True)
class BetaPrior:
    """A belief about a double's optimum as a Beta(``shape_a``, ``shape_b``) over its bounds
    mapped onto [0, 1]."""

    shape_a: float
    shape_b: float


ParameterPrior = Union[NormalPrior, BetaPrior]


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter: ``low``/``high`` for double and int, ``categories`` for categorical.

    ``conditions`` pairs a conditional's name with the values for which the parameter is active
    (all pairs must hold; none: always active). ``prior`` (doubles only) is where the user
    believes the optimum is (``optimizer/priors.py``)."""

    name: str
    type: Literal["double", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    categories: tuple[str, ...] = ()
    grid: tuple[AssignmentValue, ...] = ()
    conditions: tuple[tuple[str, tuple[str, ...]], ...] = ()
    prior: ParameterPrior | None = None


@dataclass(frozen=True)
class ConditionalSpec:
    """A conditional: a categorical choice whose value decides which parameters are active
    (``optimizer/conditionals.py``). Assignments carry it as one of ``values``."""

    name: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class LinearConstraint:
    """``sum(weight * value) >= threshold`` (greater_than) or ``<=`` (less_than) over doubles."""

    type: Literal["greater_than", "less_than"]
    threshold: float
    terms: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class ConstraintMetric:
    """A metric with strategy ``constraint``: feasible when its value is at least (maximize)
    or at most (minimize) ``threshold``."""

    name: str
    objective: Literal["maximize", "minimize"]
    threshold: float


@dataclass(frozen=True)
class SearchSpec:
    """What the engine needs to know about an experiment."""

    experiment_id: int
    kind: Literal["offline", "random", "grid"]
    parameters: tuple[ParameterSpec, ...]
    # Optimized metrics only, in the experiment's order: one or two.
    metric_names: tuple[str, ...]
    directions: tuple[Literal["maximize", "minimize"], ...]
    constraint_metrics: tuple[ConstraintMetric, ...] = ()
    linear_constraints: tuple[LinearConstraint, ...] = ()
    # Assignments hold every conditional and only the parameters active under their values.
    conditionals: tuple[ConditionalSpec, ...] = ()


@dataclass(frozen=True)
class ObservationRow:
    """A stored, non-deleted observation. ``values`` maps optimized and constraint metric names
    to values. ``stopped_at_step`` is the step at which the observation's training run was
    stopped early by the cross-run rule (ASHA, median) and stopped (None: no run, it ran to its
    end, converged, reached ``max_checkpoints`` or went on past the answer); the optimizer
    models such a run as a configuration seen to be losing (experiment_study.py)."""

    id: int
    suggestion_id: int | None
    assignments: Assignments
    values: Mapping[str, float] | None
    failed: bool
    stopped_at_step: int | None = None


@dataclass(frozen=True)
class OpenSuggestionRow:
    """A non-deleted suggestion that no observation references yet."""

    id: int
    assignments: Assignments


class RowSource(Protocol):
    """Read access to one experiment's rows, inside the caller's transaction."""

    def observations_after(
        self, observation_id: int, known: Container[int] = ()
    ) -> Sequence[ObservationRow]:
        """Non-deleted observations with id > ``observation_id``, ascending by id. Rows whose id
        is in ``known`` (already read) may be left out: the caller skips them anyway."""
        ...

    def open_suggestions(self) -> Sequence[OpenSuggestionRow]:
        """Every open, non-deleted suggestion of the experiment."""
        ...


class Suggester(Protocol):
    """Chooses assignments for a new suggestion or pooled entry.

    The caller serializes calls per experiment (the experiment's engine lock, across processes)
    but holds no database write lock while the engine computes: it reads the rows, calls
    ``propose``, then stores the result in a short write. ``for_suggestion_id`` is the key the
    result will be stored under (a suggestion id, or the negative id of a pooled entry); the
    engine records its proposal as a running trial for that key and ignores the key if
    ``open_suggestions()`` returns it. If the result is never stored, the next call finds the
    key missing from the open set and discards the running trial.
    """

    def propose(
        self, spec: SearchSpec, version: int, source: RowSource, for_suggestion_id: int
    ) -> dict[str, AssignmentValue]: ...

    def propose_batch(
        self, spec: SearchSpec, version: int, source: RowSource, suggestion_ids: Sequence[int]
    ) -> list[dict[str, AssignmentValue]]:
        """Model-based assignments for up to all of ``suggestion_ids`` from one model, each
        recorded like ``propose``'s (in order); fewer, maybe none, when the engine cannot batch
        (then the caller pads). For a fleet asking faster than ``propose`` answers."""
        ...

    def forget(self, experiment_id: int) -> None:
        """Drop any cached state for the experiment (deleted experiment, tests)."""
        ...
