"""The optimizers the quality benchmark compares, behind one ask/tell interface.

Every method sees the problem's space and a seed, and is driven by the simulated fleet
(``quality_fleet``): ``ask`` opens a suggestion, ``tell`` closes it with the objective's value.
Optuna baselines use an in-memory study, so open suggestions are RUNNING trials that their
samplers see (TPE's constant liar, GPSampler's qLogEI over running trials). ``optfleet`` drives
the server's engine in-process through the ``Suggester`` protocol, as the server does.
"""

from __future__ import annotations

import importlib.util
import random
import warnings
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from benchmarks.quality_problems import Priors, Problem
from suggestion_server.optimizer.api import (
    AssignmentValue,
    ObservationRow,
    OpenSuggestionRow,
    ParameterSpec,
    SearchSpec,
    Suggester,
)
from suggestion_server.optimizer.padding import padding_points, point_key

optuna.logging.set_verbosity(optuna.logging.ERROR)
warnings.filterwarnings("ignore", module="optuna")

METRIC = "value"
# Import name -> the package to install, for "not run (missing X)".
PACKAGE_OF = {"torch": "torch", "scipy": "scipy", "cmaes": "cmaes", "sklearn": "scikit-learn"}


class Optimizer(Protocol):
    """One optimization run: ``ask`` returns (handle, assignments), ``tell`` closes a handle."""

    def ask(self) -> tuple[int, dict[str, AssignmentValue]]: ...

    def tell(self, handle: int, value: float) -> None: ...


def optfleet_suggester(seed: int) -> Suggester:
    """The engine under test. The one place that constructs it: swap in a new engine here."""
    from suggestion_server.optimizer.suggester import StudySuggester

    return StudySuggester(seed=seed)


def search_spec(problem: Problem, priors: Priors = ()) -> SearchSpec:
    """The problem as the server's engine sees an offline (optimized) experiment, with
    ``priors`` on some of its parameters."""
    given = dict(priors)
    return SearchSpec(
        experiment_id=1,
        kind="offline",
        parameters=tuple(
            replace(p, prior=given[p.name]) if p.name in given else p for p in problem.parameters
        ),
        metric_names=(METRIC,),
        directions=("minimize",),
        conditionals=problem.conditionals,
    )


class FleetRows:
    """The experiment's rows in memory: a ``RowSource`` for the engine, fed by the fleet."""

    def __init__(self) -> None:
        self.observations: list[ObservationRow] = []
        self.open: dict[int, dict[str, AssignmentValue]] = {}

    def observations_after(
        self, observation_id: int, known: Container[int] = ()
    ) -> Sequence[ObservationRow]:
        # Ids are 1..n in insertion order, so the rows after ``observation_id`` are a slice.
        return self.observations[max(observation_id, 0) :]

    def open_suggestions(self) -> Sequence[OpenSuggestionRow]:
        return [OpenSuggestionRow(id=sid, assignments=a) for sid, a in self.open.items()]


class OptfleetOptimizer:
    """The server's engine: one ``propose`` per suggestion, observations appended as rows."""

    def __init__(self, problem: Problem, seed: int, priors: Priors = ()) -> None:
        self._engine = optfleet_suggester(seed)
        self._spec = search_spec(problem, priors)
        self._rows = FleetRows()
        self._next_suggestion_id = 1

    def ask(self) -> tuple[int, dict[str, AssignmentValue]]:
        sid = self._next_suggestion_id
        self._next_suggestion_id += 1
        assignments = self._engine.propose(self._spec, 1, self._rows, sid)
        self._rows.open[sid] = assignments
        return sid, assignments

    def tell(self, handle: int, value: float) -> None:
        assignments = self._rows.open.pop(handle)
        self._rows.observations.append(
            ObservationRow(
                id=len(self._rows.observations) + 1,
                suggestion_id=handle,
                assignments=assignments,
                values={METRIC: value},
                failed=False,
            )
        )


# A saturated pool run: one full proposal, the rest filled (pool_sizing.py's padding). 1 in 16
# is what the engine computed in the 1,000-worker benchmarks (2-9 %) rounded up.
SATURATED_RUN = 16


class SaturatedOptfleetOptimizer(OptfleetOptimizer):
    """The engine when the fleet asks faster than it proposes: each refill of the suggestion
    pool is one full proposal plus ``SATURATED_RUN - 1`` entries from the engine's batch picks
    (``fill="batch"``, falling back to padding) or uniformly random padding (``"padding"``).
    Pooled entries are open suggestions for the engine, as on the server."""

    def __init__(self, problem: Problem, seed: int, fill: str) -> None:
        super().__init__(problem, seed)
        self._fill = fill
        self._rng = random.Random(f"padding-{seed}")
        self._queue: list[int] = []

    def ask(self) -> tuple[int, dict[str, AssignmentValue]]:
        if not self._queue:
            self._refill()
        sid = self._queue.pop(0)
        return sid, self._rows.open[sid]

    def _refill(self) -> None:
        first, _ = super().ask()
        ids = list(range(self._next_suggestion_id, self._next_suggestion_id + SATURATED_RUN - 1))
        self._next_suggestion_id += len(ids)
        points: list[dict[str, AssignmentValue]] = []
        if self._fill == "batch":
            points = self._engine.propose_batch(self._spec, 1, self._rows, ids)
        taken = {point_key(a) for a in self._rows.open.values()}
        taken.update(point_key(p) for p in points)
        points += padding_points(self._spec, taken, len(ids) - len(points), self._rng)
        self._rows.open.update(zip(ids, points))
        self._queue = [first, *ids[: len(points)]]


def distribution_of(param: ParameterSpec) -> BaseDistribution:
    """The Optuna distribution of a problem parameter (the baselines' view of the space)."""
    if param.type == "categorical":
        return CategoricalDistribution(param.categories)
    assert param.low is not None and param.high is not None
    if param.type == "int":
        return IntDistribution(int(param.low), int(param.high), log=param.log)
    return FloatDistribution(param.low, param.high, log=param.log)


class OptunaOptimizer:
    """An Optuna sampler on an in-memory study via ask/tell; open trials stay RUNNING."""

    def __init__(self, problem: Problem, sampler: optuna.samplers.BaseSampler) -> None:
        self._study = optuna.create_study(direction="minimize", sampler=sampler)
        # Conditionals as categoricals: the objective reads only the active parameters.
        self._distributions = {p.name: distribution_of(p) for p in problem.parameters}
        self._distributions.update(
            (c.name, CategoricalDistribution(c.values)) for c in problem.conditionals
        )
        self._trials: dict[int, optuna.Trial] = {}

    def ask(self) -> tuple[int, dict[str, AssignmentValue]]:
        trial = self._study.ask(dict(self._distributions))
        self._trials[trial.number] = trial
        return trial.number, dict(trial.params)

    def tell(self, handle: int, value: float) -> None:
        self._study.tell(self._trials.pop(handle), value)


def _tpe(seed: int) -> optuna.samplers.BaseSampler:
    # The same TPE settings as the server's engine, so the gap to optfleet is parallelism.
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)


def _gp(seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=seed)


def _cmaes(seed: int) -> optuna.samplers.BaseSampler:
    # Categorical parameters are sampled by the independent (random) sampler.
    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)


def _optuna(
    make_sampler: Callable[[int], optuna.samplers.BaseSampler],
) -> Callable[[Problem, int], Optimizer]:
    return lambda problem, seed: OptunaOptimizer(problem, make_sampler(seed))


def _http(problem: Problem, seed: int) -> Optimizer:
    from benchmarks.quality_http import (
        HttpOptimizer,
    )  # needs the server bench_quality --http starts

    return HttpOptimizer(problem, seed)


@dataclass(frozen=True)
class Method:
    """A compared method. ``workers`` None runs it with the benchmark's worker count;
    ``default`` False leaves it out unless asked for (``--http``); ``slow`` methods run after the
    others, so an interrupted benchmark has the fast methods complete."""

    name: str
    label: str
    make: Callable[[Problem, int], Optimizer]
    workers: int | None = None
    needs: tuple[str, ...] = ()
    default: bool = True
    slow: bool = False


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method(
            "random",
            "random search",
            _optuna(lambda seed: optuna.samplers.RandomSampler(seed=seed)),
        ),
        Method("optfleet", "optfleet engine", OptfleetOptimizer),
        Method("tpe_seq", "Optuna TPE, sequential", _optuna(_tpe), workers=1),
        Method("gp", "Optuna GPSampler", _optuna(_gp), needs=("torch", "scipy"), slow=True),
        Method("cmaes", "Optuna CMA-ES", _optuna(_cmaes), needs=("cmaes",)),
        Method("optfleet_http", "optfleet server over HTTP", _http, default=False),
        Method(
            "optfleet_prior_right",
            "optfleet engine, priors near the optimum",
            lambda problem, seed: OptfleetOptimizer(problem, seed, problem.prior_right),
            default=False,
        ),
        Method(
            "optfleet_prior_wrong",
            "optfleet engine, priors far from the optimum",
            lambda problem, seed: OptfleetOptimizer(problem, seed, problem.prior_wrong),
            default=False,
        ),
        Method(
            "saturated_padding",
            f"optfleet engine saturated: 1 in {SATURATED_RUN} proposed, rest random padding",
            lambda problem, seed: SaturatedOptfleetOptimizer(problem, seed, "padding"),
            default=False,
        ),
        Method(
            "saturated_batch",
            f"optfleet engine saturated: 1 in {SATURATED_RUN} proposed, rest batch picks",
            lambda problem, seed: SaturatedOptfleetOptimizer(problem, seed, "batch"),
            default=False,
        ),
    ]
}


def missing_packages(needs: Sequence[str]) -> list[str]:
    """The packages (pip names) among ``needs`` (import names) that cannot be imported."""
    return [PACKAGE_OF.get(name, name) for name in needs if importlib.util.find_spec(name) is None]
