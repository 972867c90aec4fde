"""Which Optuna sampler an experiment type uses."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial

from suggestion_server.optimizer.api import SearchSpec
from suggestion_server.optimizer.fleet_sampler import FleetSampler
from suggestion_server.optimizer.gp.proposer import GaussianProcessProposer
from suggestion_server.optimizer.space import distributions_for, validate_spec

# `multivariate` is marked experimental in Optuna; it is also ~3x cheaper per ask than the
# independent TPE at 1,000-5,000 trials (one Parzen estimator instead of one per parameter).
warnings.filterwarnings("ignore", category=ExperimentalWarning, module="optuna")
# Optuna logs per-ask warnings (e.g. independent sampling of a parameter some trials lack)
# through its own logger; the server logs its own events instead.
optuna.logging.set_verbosity(optuna.logging.ERROR)


_MISSING: tuple[float, ...] = ()


class CachedReprTPESampler(optuna.samplers.TPESampler):
    """TPE that remembers each finished trial's parameters in Optuna's internal representation.

    TPE converts every trial's parameters on every ask (twice: good and bad group), in Python:
    ~40% of an ask at 5,000 trials. A finished trial's parameters never change in our studies, so
    the converted row is cached by trial id. Proposals are identical to ``TPESampler``'s (a test
    checks it); this overrides a private method of the pinned Optuna version.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rows: dict[
            tuple[tuple[str, ...], tuple[BaseDistribution, ...]], dict[int, tuple[float, ...]]
        ] = {}

    def _get_internal_repr(
        self,
        trials: list[FrozenTrial],
        search_space: dict[str, BaseDistribution],
        study: optuna.Study,
    ) -> dict[str, np.ndarray]:
        names = tuple(search_space)
        distributions = tuple(search_space.values())
        cache = self._rows.setdefault((names, distributions), {})
        rows: list[tuple[float, ...]] = []
        for trial in trials:
            row = cache.get(trial._trial_id)
            if row is None:
                params = self._get_params(trial, study)
                row = (
                    tuple(d.to_internal_repr(params[n]) for n, d in zip(names, distributions))
                    if all(name in params for name in names)
                    else _MISSING
                )
                if trial.state.is_finished():
                    cache[trial._trial_id] = row
            if row:
                rows.append(row)
        matrix = np.asarray(rows, dtype=float).reshape(len(rows), len(names))
        return {name: matrix[:, i] for i, name in enumerate(names)}


# Where the Gaussian process stops being the better engine (docs/api.md, "The engine").
GP_MAX_PARAMETERS = 10
GP_MAX_ENCODED_DIMENSIONS = 16


def engine_for(spec: SearchSpec) -> str:
    """``gp`` or ``tpe``: which model an ``offline`` experiment's suggestions come from.

    The Gaussian process wins at the budgets fleets run (tens to hundreds of evaluations) on
    low-dimensional continuous and mixed spaces; TPE takes over for two objectives, for many
    parameters, and for categorical-heavy spaces (one GP dimension per category).
    """
    if len(spec.metric_names) != 1:
        return "tpe"
    encoded = sum(len(p.categories) if p.type == "categorical" else 1 for p in spec.parameters)
    if len(spec.parameters) > GP_MAX_PARAMETERS or encoded > GP_MAX_ENCODED_DIMENSIONS:
        return "tpe"
    return "gp"


def sampler_for(
    spec: SearchSpec, seed: int | None, n_startup_trials: int = 10
) -> optuna.samplers.BaseSampler:
    """The sampler of an experiment: for ``offline`` the start-up design then the model of
    ``engine_for``; random sampling for ``random`` (quasi-random under linear constraints).

    Grid experiments choose their points themselves (see ``grid.py``); their study still needs a
    sampler object, and never asks it.
    """
    validate_spec(spec)
    distributions = distributions_for(spec)
    model: optuna.samplers.BaseSampler | GaussianProcessProposer | None = None
    if spec.kind == "offline":
        if engine_for(spec) == "gp":
            model = GaussianProcessProposer(
                spec.parameters,
                minimize=spec.directions[0] == "minimize",
                constraint_names=[m.name for m in spec.constraint_metrics],
                linear_constraints=spec.linear_constraints,
                seed=seed,
            )
        else:
            model = CachedReprTPESampler(
                seed=seed, n_startup_trials=0, multivariate=True, constant_liar=True
            )
    elif not spec.linear_constraints:
        return optuna.samplers.RandomSampler(seed=seed)
    return FleetSampler(
        spec.parameters,
        distributions,
        model,
        n_startup=n_startup_trials if model is not None else 2**31,
        linear_constraints=spec.linear_constraints,
        seed=seed,
    )


def derived_seed(base_seed: int | None, experiment_id: int, build_number: int) -> int | None:
    """A seed per (experiment, study build), so a rebuilt study does not replay old proposals."""
    if base_seed is None:
        return None
    return (base_seed * 1_000_003 + experiment_id * 10_007 + build_number) % 2**32
