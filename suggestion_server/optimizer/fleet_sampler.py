"""The sampler every optimized experiment uses: a start-up design, then a model, never infeasible.

Start-up: the first ``n_startup`` suggestions follow a scrambled Sobol sequence (spread evenly,
unlike random points, which clump). They are counted over finished AND open suggestions: with a
fleet of 8, counting only finished ones would hand out about 17 start-up points of a budget of 80
(8 open while the 10th result is awaited) instead of 10.

Every other start-up point takes parameters with a prior from the prior (priors.py).

Runs stopped early are PRUNED trials (experiment_study.py): finished suggestions for the start-up
count, and trials the model sees (TPE ranks them after the complete ones; the Gaussian process
models them no better than the worst full-length value).

Then the model sampler (Gaussian process or TPE) proposes. A proposal that violates a linear
constraint is asked again (TPE samples at random and may), and after ``_FEASIBLE_TRIES`` replaced
by a random feasible point, so no suggestion ever violates one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState
from scipy.stats import qmc

from suggestion_server.optimizer.api import AssignmentValue, LinearConstraint, ParameterSpec
from suggestion_server.optimizer.encoding import UnitCubeEncoding
from suggestion_server.optimizer.gp.proposer import GaussianProcessProposer
from suggestion_server.optimizer.linear_constraints import satisfies
from suggestion_server.optimizer.priors import Priors, top_up_until

_FEASIBLE_TRIES = 8
_RANDOM_FEASIBLE_BATCHES = 40
_RANDOM_FEASIBLE_BATCH = 256
_SOBOL_POINTS = 64
# Trials that stand for observations: complete ones and runs stopped early (PRUNED).
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class FleetSampler(optuna.samplers.BaseSampler):
    """Start-up design over finished + open trials, then ``model`` (None: start-up forever,
    i.e. quasi-random search)."""

    def __init__(
        self,
        parameters: Sequence[ParameterSpec],
        distributions: dict[str, BaseDistribution],
        model: optuna.samplers.BaseSampler | GaussianProcessProposer | None,
        *,
        n_startup: int,
        linear_constraints: Sequence[LinearConstraint] = (),
        seed: int | None = None,
    ) -> None:
        self._encoding = UnitCubeEncoding(parameters)
        self._priors = Priors.in_cube(parameters, self._encoding)
        self._distributions = distributions
        self.model = model
        self._n_startup = n_startup
        self._linear = tuple(linear_constraints)
        self._rng = np.random.default_rng(seed)
        sobol = qmc.Sobol(d=len(parameters), scramble=True, seed=self._rng)
        self._sobol = sobol.random_base2(int(np.log2(_SOBOL_POINTS)))
        self._startup_drawn = 0
        if isinstance(model, GaussianProcessProposer):
            model.top_up_until = top_up_until(self._priors, n_startup)

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        if isinstance(self.model, optuna.samplers.BaseSampler):
            self.model.reseed_rng()

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return dict(self._distributions)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._random_feasible()[param_name]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if isinstance(self.model, optuna.samplers.BaseSampler):
            self.model.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        if isinstance(self.model, optuna.samplers.BaseSampler):
            self.model.after_trial(study, trial, state, values)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        others = self._others(study, trial._trial_id)
        finished = [t for t in others if t.state in _FINISHED]
        if self.model is None or not finished or len(others) < self._n_startup:
            return self._startup_point()
        if isinstance(self.model, GaussianProcessProposer):
            complete, pending = self._modelled(others)
            if not complete:
                return self._startup_point()
            try:
                return self.model.propose(complete, pending)
            except ValueError:
                # No random candidate met the linear constraints (a thin feasible region):
                # a feasible point found by rejection sampling instead of no suggestion at all.
                return self._random_feasible()
        for _ in range(_FEASIBLE_TRIES):
            space = self.model.infer_relative_search_space(study, trial)
            params = dict(self.model.sample_relative(study, trial, space))
            if len(params) < len(self._distributions):
                fill = self._random_feasible()
                params.update({k: v for k, v in fill.items() if k not in params})
            if satisfies(params, self._linear):
                return params
        return self._random_feasible()

    def propose_batch(self, study: optuna.Study, count: int) -> list[dict[str, AssignmentValue]]:
        """Up to ``count`` model-based points at once, all trials so far pending or finished;
        empty when the model is not a Gaussian process or is still in its start-up design."""
        if not isinstance(self.model, GaussianProcessProposer):
            return []
        others = self._others(study, None)
        complete, pending = self._modelled(others)
        if not complete or len(others) < self._n_startup:
            return []
        try:
            return self.model.propose_batch(complete, pending, count)
        except ValueError:
            return []  # no candidate met the linear constraints: the caller pads instead

    @staticmethod
    def _others(study: optuna.Study, asking: int | None) -> list[FrozenTrial]:
        """Finished (complete or stopped) and running trials but the one asking."""
        trials = study._get_trials(
            deepcopy=False, states=(*_FINISHED, TrialState.RUNNING), use_cache=True
        )
        return [t for t in trials if t._trial_id != asking]

    def _modelled(self, others: list[FrozenTrial]) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
        """(finished, running) trials the Gaussian process models: feasible by construction;
        trials lacking a parameter (added later) are left out. Finished includes stopped runs."""
        names = self._distributions.keys()
        usable = [t for t in others if names <= t.params.keys()]
        return (
            [t for t in usable if t.state in _FINISHED],
            [t for t in usable if t.state == TrialState.RUNNING],
        )

    def _startup_point(self) -> dict[str, AssignmentValue]:
        for _ in range(_FEASIBLE_TRIES):
            index = self._startup_drawn
            self._startup_drawn += 1
            if index >= len(self._sobol):
                break
            fractions = self._priors.startup_fractions(self._sobol[index], index)
            params = self._encoding.decode(self._encoding.from_fractions(fractions))
            if satisfies(params, self._linear):
                return params
        return self._random_feasible()

    def _random_feasible(self) -> dict[str, AssignmentValue]:
        for _ in range(_RANDOM_FEASIBLE_BATCHES):
            for point in self._encoding.random_points(_RANDOM_FEASIBLE_BATCH, self._rng):
                params = self._encoding.decode(point)
                if satisfies(params, self._linear):
                    return params
        raise ValueError(
            "linear_constraints: no random assignment satisfied them; the feasible region is "
            "too small to sample"
        )
