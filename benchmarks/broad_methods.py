"""The methods the broad benchmark compares, each built for one problem instance and seed.

Everything runs in the same invocation on the same simulated fleet. Optuna baselines use an
in-memory study through ask/tell; open suggestions are RUNNING trials. ``optfleet@COMMIT`` is
the engine as it was at COMMIT (``_engine_at``), for before/after runs.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import optuna
from optuna.samplers import GPSampler
from optuna.trial import FrozenTrial, TrialState

from benchmarks.quality_methods import OptfleetOptimizer, Optimizer, OptunaOptimizer
from suggestion_server.optimizer.api import ParameterSpec

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


def _space(context: Context) -> Any:
    return SimpleNamespace(parameters=context.parameters)


def _optuna(
    make: Callable[[Context], optuna.samplers.BaseSampler],
) -> Callable[[Context], Optimizer]:
    return lambda context: OptunaOptimizer(_space(context), make(context))


def _tpe(context: Context) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=context.seed, multivariate=True, constant_liar=True)


def _optfleet(context: Context) -> Optimizer:
    return OptfleetOptimizer(_space(context), context.seed)


def _optfleet_at(commit: str) -> Callable[[Context], Optimizer]:
    def make(context: Context) -> Optimizer:
        from benchmarks._engine_at import engine_at

        optimizer = OptfleetOptimizer(_space(context), context.seed)
        optimizer._engine = engine_at(commit)(seed=context.seed)
        return optimizer

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


def method(name: str) -> BroadMethod:
    """The method called ``name``; ``optfleet@COMMIT`` is the engine at COMMIT."""
    if name in METHODS:
        return METHODS[name]
    if name.startswith("optfleet@"):
        commit = name.split("@", 1)[1]
        return BroadMethod(name, f"optfleet engine at {commit}", _optfleet_at(commit))
    raise KeyError(name)


def missing_packages(needs: Sequence[str]) -> list[str]:
    """The pip names of the import names in ``needs`` that cannot be imported."""
    return [PACKAGE_OF.get(n, n) for n in needs if importlib.util.find_spec(n) is None]
