"""The methods the broad benchmark compares, each built for one problem instance and seed.

Everything runs in the same invocation on the same simulated fleet. Optuna baselines use an
in-memory study through ask/tell; open suggestions are RUNNING trials. ``optfleet@COMMIT`` is
the engine as it was at COMMIT (``_engine_at``), for before/after runs.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import GPSampler
from optuna.trial import FrozenTrial, TrialState

from suggestion_server.optimizer.api import (
    AssignmentValue,
    ObservationRow,
    OpenSuggestionRow,
    ParameterSpec,
    SearchSpec,
)

PACKAGE_OF = {
    "torch": "torch",
    "scipy": "scipy",
    "cmaes": "cmaes",
    "sklearn": "scikit-learn",
    "cocoex": "coco-experiment",
}


@dataclass(frozen=True)
class Context:
    """What a method may know about the run: the space, the seed, the fleet, whether the
    objective is deterministic (the experiment would say so)."""

    parameters: tuple[ParameterSpec, ...]
    seed: int
    workers: int
    deterministic: bool


class FleetStartupGPSampler(GPSampler):
    """Optuna's GPSampler with its start-up design counted over finished AND running trials
    (as optfleet counts it), so a fleet does not spend ~2x the start-up points at random."""

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]
    ) -> dict[str, Any]:
        trials = study._get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING), use_cache=False
        )
        others = [t for t in trials if t._trial_id != trial._trial_id]
        complete = sum(t.state == TrialState.COMPLETE for t in others)
        if len(others) < self._n_startup_trials or complete < 2:
            return {}
        startup, self._n_startup_trials = self._n_startup_trials, 0
        try:
            return super().sample_relative(study, trial, search_space)
        finally:
            self._n_startup_trials = startup


class Optimizer(Protocol):
    """One run: ``ask`` returns (handle, assignments), ``tell`` closes a handle."""

    def ask(self) -> tuple[int, dict[str, AssignmentValue]]: ...

    def tell(self, handle: int, value: float) -> None: ...


METRIC = "value"


class _Rows:
    """The experiment's rows in memory, as the server's ``RowSource`` hands them over."""

    def __init__(self) -> None:
        self.observations: list[ObservationRow] = []
        self.open: dict[int, dict[str, AssignmentValue]] = {}

    def observations_after(
        self, observation_id: int, known: Container[int] = ()
    ) -> Sequence[ObservationRow]:
        return self.observations[max(observation_id, 0) :]  # ids are 1..n in order

    def open_suggestions(self) -> Sequence[OpenSuggestionRow]:
        return [OpenSuggestionRow(id=sid, assignments=a) for sid, a in self.open.items()]


class EngineOptimizer:
    """The server's engine driven as the server drives it: one ``propose`` per suggestion."""

    def __init__(self, parameters: tuple[ParameterSpec, ...], engine: Any) -> None:
        self._engine = engine
        self._spec = SearchSpec(1, "offline", parameters, (METRIC,), ("minimize",))
        self._rows = _Rows()
        self._next_id = 1

    def ask(self) -> tuple[int, dict[str, AssignmentValue]]:
        sid, self._next_id = self._next_id, self._next_id + 1
        assignments = self._engine.propose(self._spec, 1, self._rows, sid)
        self._rows.open[sid] = assignments
        return sid, assignments

    def tell(self, handle: int, value: float) -> None:
        assignments = self._rows.open.pop(handle)
        row_id = len(self._rows.observations) + 1
        self._rows.observations.append(
            ObservationRow(row_id, handle, assignments, {METRIC: value}, False)
        )


def distribution_of(param: ParameterSpec) -> BaseDistribution:
    """The Optuna distribution of a parameter."""
    if param.type == "categorical":
        return CategoricalDistribution(param.categories)
    low, high = float(param.low or 0.0), float(param.high or 0.0)
    if param.type == "int":
        return IntDistribution(int(low), int(high), log=param.log)
    return FloatDistribution(low, high, log=param.log)


class OptunaOptimizer:
    """An Optuna sampler on an in-memory study via ask/tell; open trials stay RUNNING."""

    def __init__(
        self, parameters: tuple[ParameterSpec, ...], sampler: optuna.samplers.BaseSampler
    ) -> None:
        self._study = optuna.create_study(direction="minimize", sampler=sampler)
        self._distributions = {p.name: distribution_of(p) for p in parameters}
        self._trials: dict[int, optuna.Trial] = {}

    def ask(self) -> tuple[int, dict[str, AssignmentValue]]:
        trial = self._study.ask(dict(self._distributions))
        self._trials[trial.number] = trial
        return trial.number, dict(trial.params)

    def tell(self, handle: int, value: float) -> None:
        self._study.tell(self._trials.pop(handle), value)


def _optuna(
    make: Callable[[Context], optuna.samplers.BaseSampler],
) -> Callable[[Context], Optimizer]:
    return lambda context: OptunaOptimizer(context.parameters, make(context))


def _tpe(context: Context) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=context.seed, multivariate=True, constant_liar=True)


def _optfleet(context: Context) -> Optimizer:
    from suggestion_server.optimizer.suggester import StudySuggester

    return EngineOptimizer(context.parameters, StudySuggester(seed=context.seed))


def _optfleet_at(commit: str) -> Callable[[Context], Optimizer]:
    def make(context: Context) -> Optimizer:
        from benchmarks._engine_at import engine_at

        return EngineOptimizer(context.parameters, engine_at(commit)(seed=context.seed))

    return make


@dataclass(frozen=True)
class BroadMethod:
    """A compared method; ``sequential`` ones run with one worker whatever the fleet."""

    name: str
    label: str
    make: Callable[[Context], Optimizer]
    needs: tuple[str, ...] = ()
    sequential: bool = False
    slow: bool = False


METHODS: dict[str, BroadMethod] = {
    m.name: m
    for m in [
        BroadMethod(
            "random",
            "random search",
            _optuna(lambda c: optuna.samplers.RandomSampler(seed=c.seed)),
        ),
        BroadMethod("optfleet", "optfleet engine", _optfleet, needs=("scipy",)),
        BroadMethod("tpe_seq", "TPE sequential (1 worker)", _optuna(_tpe), sequential=True),
        BroadMethod("tpe_cl", "TPE constant liar", _optuna(_tpe)),
        BroadMethod(
            "cmaes",
            "CMA-ES",
            _optuna(
                lambda c: optuna.samplers.CmaEsSampler(seed=c.seed, warn_independent_sampling=False)
            ),
            needs=("cmaes",),
        ),
        BroadMethod(
            "gp",
            "GPSampler (defaults)",
            _optuna(lambda c: GPSampler(seed=c.seed)),
            needs=("torch", "scipy"),
            slow=True,
        ),
        BroadMethod(
            "gp_fleet",
            "GPSampler (start-up over running trials, deterministic where true)",
            _optuna(
                lambda c: FleetStartupGPSampler(
                    seed=c.seed, deterministic_objective=c.deterministic
                )
            ),
            needs=("torch", "scipy"),
            slow=True,
        ),
    ]
}


def _optfleet_with(overrides: dict[str, Any]) -> Callable[[Context], Optimizer]:
    """Today's engine with other ``ProposerSettings`` (a dev-split variant)."""

    def make(context: Context) -> Optimizer:
        from suggestion_server.optimizer.gp import proposer, safeguards

        # The proposer builds its settings from this name when none are given; each run sets
        # it, so runs sharing a worker process do not inherit each other's.
        proposer.ProposerSettings = functools.partial(  # type: ignore[misc]
            safeguards.ProposerSettings, **overrides
        )
        return _optfleet(context)

    return make


def _settings_of(name: str) -> dict[str, Any]:
    """ "optfleet+explore_every=5+lost_below=0.3" -> {"explore_every": 5, "lost_below": 0.3}."""
    from suggestion_server.optimizer.gp.safeguards import ProposerSettings

    defaults = ProposerSettings()
    overrides: dict[str, Any] = {}
    for part in name.split("+")[1:]:
        key, value = part.split("=")
        kind = type(getattr(defaults, key))
        overrides[key] = value == "1" if kind is bool else kind(value)
    return overrides


def method(name: str) -> BroadMethod:
    """The method called ``name``; ``optfleet@COMMIT`` is the engine at COMMIT,
    ``optfleet+SETTING=VALUE+...`` today's with other proposer settings."""
    if name == "optfleet":
        return replace(METHODS[name], make=_optfleet_with({}))
    if name in METHODS:
        return METHODS[name]
    if name.startswith("optfleet+"):
        return BroadMethod(name, f"optfleet {name[9:]}", _optfleet_with(_settings_of(name)))
    if name.startswith("optfleet@"):
        commit = name.split("@", 1)[1]
        return BroadMethod(name, f"optfleet engine at {commit}", _optfleet_at(commit))
    raise KeyError(name)


def missing_packages(needs: Sequence[str]) -> list[str]:
    """The pip names of the import names in ``needs`` that cannot be imported."""
    return [PACKAGE_OF.get(n, n) for n in needs if importlib.util.find_spec(n) is None]
