"""Gaussian-process Bayesian optimization, aware of the fleet's open work.

Each ask models the completed trials (failed ones at the worst value seen, so the model learns to
avoid them; runs stopped early, PRUNED trials, no better than the worst full-length value, see
``modelled_values``), conditions the model on the RUNNING trials at its own predicted values (the
"kriging believer": in-flight points are believed to come out as predicted, which removes their
uncertainty and so spreads a fleet's parallel proposals instead of crowding one spot), and
maximizes log EI times the probability of meeting every constraint metric.

Hyperparameters are refitted only when the completed trials changed since the last fit: asks
that differ only in open suggestions (a fleet asking in a burst, a pool refill) reuse them.
Models see at most ``max_fit_points`` completed trials (the best third and the most recent
rest) and at most ``max_pending`` running ones, which bounds the cost of an ask.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from suggestion_server.optimizer.api import AssignmentValue, LinearConstraint, ParameterSpec
from suggestion_server.optimizer.conditionals import on_active_parameters
from suggestion_server.optimizer.encoding import UnitCubeEncoding
from suggestion_server.optimizer.gp.acquisition import Acquisition, matching, maximize_acquisition
from suggestion_server.optimizer.gp.batch import believer_picks
from suggestion_server.optimizer.gp.model import (
    GaussianProcess,
    Hyperparameters,
    fit_hyperparameters,
)
from suggestion_server.optimizer.gp.safeguards import (
    SPACE_FILLING_POOL,
    ProposerSettings,
    StoppedValues,
    space_filling_point,
)
from suggestion_server.optimizer.linear_constraints import feasible_rows
from suggestion_server.optimizer.priors import Priors, prior_log_term, prior_weighted

FAILED_CONSTRAINT = "failed"
RANDOM_CANDIDATES = 1024
LOCAL_CANDIDATES_PER_POINT = 64
LOCAL_CENTRES = 5
# A batch picks from a fixed candidate set without gradient steps: more random candidates.
BATCH_EXTRA_CANDIDATES = 1024
# With ``stopped_values="ranked"`` runs stopped early are modelled no better than this quantile
# of the full-length values (modelled_values): the median. Chosen a priori, not tuned.
STOPPED_QUANTILE = 0.5
# Every this many fits, fitting also starts from the prior's mode, not only the last fit.
_RESTART_EVERY = 8
_REFIT_ALWAYS_BELOW = 100


def metric_constraint_key(name: str) -> str:
    """The trial constraint that holds a constraint metric's violation (≤ 0 is feasible)."""
    return f"metric:{name}"


class GaussianProcessProposer:
    """GP-BO over the whole search space for one single-objective study (see module doc); the
    fleet sampler hands it the study's finished and running trials.

    ``minimize`` says which way the study's one objective goes; ``constraint_names`` are the
    constraint metrics (trial constraints ``metric:NAME``).
    """

    def __init__(
        self,
        parameters: Sequence[ParameterSpec],
        *,
        minimize: bool,
        constraint_names: Sequence[str] = (),
        linear_constraints: Sequence[LinearConstraint] = (),
        seed: int | None = None,
        max_fit_points: int = 160,
        max_pending: int = 256,
        settings: ProposerSettings | None = None,
    ) -> None:
        # Safeguards for a fleet when the model is poor (safeguards.py).
        self._settings = settings or ProposerSettings()
        self._loo = 1.0
        # Where the last proposal came from: "model", or "explore" (space-filling).
        self.last_source = "model"
        self._encoding = UnitCubeEncoding(parameters)
        self._priors = Priors.in_cube(parameters, self._encoding)
        self._sign = 1.0 if minimize else -1.0
        self._constraint_names = tuple(constraint_names)
        self._linear = tuple(linear_constraints)
        self._rng = np.random.default_rng(seed)
        self._max_fit_points = max_fit_points
        self._max_pending = max_pending
        self._fitted: dict[str, tuple[tuple[int, ...], Hyperparameters]] = {}
        self._fits = 0
        self.top_up_until = 0  # set by the fleet sampler, which knows the start-up design

    def propose(
        self, complete: Sequence[FrozenTrial], running: Sequence[FrozenTrial]
    ) -> dict[str, AssignmentValue]:
        """The next point given finished and in-flight trials (at least one finished)."""
        state = self._state(complete, running)
        asked = len(complete) + len(running)
        # A contradicted prior's start-up points made up for (priors.top_up_until).
        tops_up = state.prior_contradicted and asked < self.top_up_until
        if tops_up or self._settings.explores(len(complete), asked, self._loo):
            random_points = self._encoding.random_points(SPACE_FILLING_POOL, self._rng)
            known = np.vstack([state.observed, state.excluded])
            spread = space_filling_point(
                self._encoding.snapped(random_points), self._feasible, known
            )
            if spread is not None:
                self.last_source = "explore"
                return self._encoding.decode(spread)
        self.last_source = "model"
        # Weighted by the priors (priors.py), judged at the active parameters (conditionals.py).
        acquisition = on_active_parameters(
            prior_weighted(
                state.acquisition, self._priors, len(complete), state.prior_contradicted
            ),
            self._encoding.inactive,
        )
        point = maximize_acquisition(
            acquisition,  # type: ignore[arg-type]  # the same call signature
            state.candidates,
            self._encoding.continuous_mask,
            self._feasible,
            self._encoding.snapped,
            excluded=state.excluded,
            spacing=self._settings.pending_spacing,
        )
        return self._encoding.decode(point)

    def propose_batch(
        self, complete: Sequence[FrozenTrial], running: Sequence[FrozenTrial], count: int
    ) -> list[dict[str, AssignmentValue]]:
        """Up to ``count`` distinct points at once (``gp_batch.py``): for a fleet asking faster
        than ``propose`` can answer. Fewer when the candidates run out."""
        state = self._state(complete, running, extra_random=BATCH_EXTRA_CANDIDATES)
        candidates = self._encoding.snapped(state.candidates)
        candidates = np.unique(candidates[self._feasible(candidates)], axis=0)
        # Nor a finished point: many cheap picks on a discrete space would otherwise repeat
        # the best ones the model still believes in. Nor a near copy of an open one.
        spacing = max(self._settings.pending_spacing, 1e-9)
        fresh = ~matching(candidates, state.excluded, spacing)
        candidates = candidates[fresh & ~matching(candidates, state.observed)]
        fixed_log, _ = Acquisition(state.acquisition.objective, None, state.constraints)(candidates)
        fixed_log += prior_log_term(
            self._priors, candidates, len(complete), state.prior_contradicted
        )
        picks = believer_picks(
            state.acquisition.objective,
            state.acquisition.incumbent,
            fixed_log,
            candidates,
            count,
            spacing=self._settings.pending_spacing,
        )
        return [self._encoding.decode(candidates[i]) for i in picks]

    def _state(
        self, complete: Sequence[FrozenTrial], running: Sequence[FrozenTrial], extra_random: int = 0
    ) -> _AskState:
        """The models, acquisition and candidates of one ask."""
        complete = self._fit_subset(complete)
        pending = list(running)[-self._max_pending :]
        x = np.array([self._encoding.encode(t.params) for t in complete])
        xp = (
            np.array([self._encoding.encode(t.params) for t in pending])
            if pending
            else np.zeros((0, self._encoding.dimensions))
        )
        failed = np.array([_violation(t, FAILED_CONSTRAINT) > 0 for t in complete])
        objective = self._objective_model(complete, x, xp, failed)
        constraint_models = []
        feasible_mask = ~failed
        for name in self._constraint_names:
            model, satisfied = self._constraint_model(name, complete, x, xp, failed)
            if model is not None:
                constraint_models.append(model)
            feasible_mask &= satisfied
        incumbent = None
        if feasible_mask.any():
            # Believed values of in-flight points count too: the believer's incumbent.
            incumbent = float(objective.y[: len(complete)][feasible_mask].min())
            if len(xp):
                incumbent = min(incumbent, float(objective.y[len(complete) :].min()))
        acquisition = Acquisition(objective, incumbent, constraint_models)
        candidates = self._candidates(x, objective.y[: len(complete)], feasible_mask)
        if extra_random:
            extra = self._encoding.random_points(extra_random, self._rng)
            candidates = np.vstack([candidates, extra])
        snapped = self._encoding.snapped
        contradicted = self._prior_contradicted(x, objective.y[: len(complete)], feasible_mask)
        return _AskState(
            acquisition, constraint_models, candidates, snapped(xp), snapped(x), contradicted
        )

    def _prior_contradicted(self, x: np.ndarray, y: np.ndarray, feasible: np.ndarray) -> bool:
        """Whether the best finished feasible point lies outside the priors' central region
        (priors.py): the priors then no longer weigh the acquisition."""
        if not self._priors or not feasible.any():
            return False
        best = x[int(np.argmin(np.where(feasible, y, np.inf)))]
        inactive = (
            self._encoding.inactive.apply(best[None, :])[1][0] if self._encoding.inactive else None
        )
        return self._priors.contradicted_by(best, inactive)

    def _fit_subset(self, complete: Sequence[FrozenTrial]) -> list[FrozenTrial]:
        if len(complete) <= self._max_fit_points:
            return list(complete)
        keep_best = self._max_fit_points // 3
        # Full-length runs first: a stopped run's early value is no claim to be among the best.
        ranked = sorted(complete, key=lambda t: (_stopped(t), self._sign * _objective_value(t)))
        best = {t._trial_id for t in ranked[:keep_best]}
        recent = [t for t in complete if t._trial_id not in best][
            -(self._max_fit_points - keep_best) :
        ]
        return [t for t in complete if t._trial_id in best] + recent

    def _objective_model(
        self,
        complete: Sequence[FrozenTrial],
        x: np.ndarray,
        xp: np.ndarray,
        failed: np.ndarray,
    ) -> GaussianProcess:
        raw = modelled_values(complete, self._sign, failed, self._settings.stopped_values)
        ok = ~failed & np.isfinite(raw)
        worst = float(raw[ok].max()) if ok.any() else 0.0
        raw = np.where(ok, raw, worst)
        y = _standardized(raw)
        model = self._model("objective", complete, x, y)
        settings = self._settings
        checked = settings.lost_below > -math.inf and len(complete) >= settings.lost_min_points
        self._loo = model.loo_correlation() if checked else 1.0
        return _believing(model, xp, self._settings.exact_believer)

    def _constraint_model(
        self,
        name: str,
        complete: Sequence[FrozenTrial],
        x: np.ndarray,
        xp: np.ndarray,
        failed: np.ndarray,
    ) -> tuple[GaussianProcess | None, np.ndarray]:
        key = metric_constraint_key(name)
        values = np.array([_violation(t, key) for t in complete])
        known = ~failed & np.isfinite(values)
        satisfied = known & (values <= 0)
        if known.sum() < 2:
            return None, satisfied | ~known
        # Scale by the spread but keep 0 (the threshold) at 0.
        scale = float(np.std(values[known])) or 1.0
        model = self._model(
            key, [t for t, k in zip(complete, known) if k], x[known], values[known] / scale
        )
        return _believing(model, xp, self._settings.exact_believer), satisfied

    def _model(
        self, key: str, trials: Sequence[FrozenTrial], x: np.ndarray, y: np.ndarray
    ) -> GaussianProcess:
        ids = tuple(t._trial_id for t in trials)
        cached = self._fitted.get(key)
        if cached is not None and (cached[0] == ids or not _worth_refitting(cached[0], ids)):
            hyper = cached[1]
        else:
            self._fits += 1
            restart = self._fits % _RESTART_EVERY == 0  # now and then: escape a poor optimum
            hyper = fit_hyperparameters(x, y, cached[1] if cached else None, restart=restart)
            self._fitted[key] = (ids, hyper)
        return GaussianProcess(x, y, hyper)

    def _candidates(self, x: np.ndarray, y: np.ndarray, feasible: np.ndarray) -> np.ndarray:
        parts = [self._encoding.random_points(RANDOM_CANDIDATES, self._rng)]
        order = np.argsort(np.where(feasible, y, np.inf))[:LOCAL_CENTRES]
        for index in order:
            for scale in (0.02, 0.1):
                local = (
                    x[index]
                    + self._rng.normal(0.0, scale, (LOCAL_CANDIDATES_PER_POINT // 2, x.shape[1]))
                    * self._encoding.continuous_mask
                )
                parts.append(np.clip(local, 0.0, 1.0))
        return np.vstack(parts)

    def _feasible(self, points: np.ndarray) -> np.ndarray:
        if not self._linear:
            return np.ones(len(points), dtype=bool)
        return feasible_rows([self._encoding.decode(p) for p in points], self._linear)


@dataclass
class _AskState:
    """What one ask computes before choosing points."""

    acquisition: Acquisition
    constraints: list[GaussianProcess]
    candidates: np.ndarray
    excluded: np.ndarray  # the open points, snapped
    observed: np.ndarray  # the finished points the model saw, snapped
    prior_contradicted: bool = False  # the incumbent lies outside the priors' central region


def _worth_refitting(fitted: tuple[int, ...], now: tuple[int, ...]) -> bool:
    """Refit after every change while data is scarce; past ``_REFIT_ALWAYS_BELOW`` points only
    once a tenth of them are new (hyperparameters barely move then, and a fit on 150 points
    costs 10-40x a proposal; the posterior always uses every point)."""
    if len(now) < _REFIT_ALWAYS_BELOW:
        return True
    new = len(set(now) - set(fitted))
    return new >= 0.1 * len(now)


def _objective_value(trial: FrozenTrial) -> float:
    """The trial's value; a stopped run's value at its last step."""
    values = trial.values
    if values:
        return float(values[0])
    if trial.intermediate_values:
        return float(trial.intermediate_values[max(trial.intermediate_values)])
    return math.nan


def _stopped(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.PRUNED


def modelled_values(
    trials: Sequence[FrozenTrial],
    sign: float,
    failed: np.ndarray | None = None,
    stopped: StoppedValues = "worst",
) -> np.ndarray:
    """The values the objective model sees, minimized (``sign`` -1 for a maximized metric).

    A run stopped early is a configuration seen to be losing, not a full-length value: ``worst``
    (the default) models it at the worse of its own value and the worst full-length value, so
    the model steers away from its region without believing its early value. ``ranked``
    (development only, see ``ProposerSettings.stopped_values``) models it from its rank among
    the runs stopped at the same step, the best of them at the median of the full-length
    values, the worst at the worst. Either way it is never the incumbent. Before any
    full-length value, stopped runs keep their own values (nothing better is known). Failed
    trials and NaN stay as they are.
    """
    raw = np.array([sign * _objective_value(t) for t in trials], dtype=float)
    if not len(raw):
        return raw
    is_stopped = np.array([_stopped(t) for t in trials])
    ok = np.isfinite(raw) & (np.ones(len(raw), dtype=bool) if failed is None else ~failed)
    full = ok & ~is_stopped
    if not full.any():
        return raw
    if stopped == "worst":
        floor = float(raw[full].max())
        return np.where(ok & is_stopped, np.maximum(raw, floor), raw)
    out = raw.copy()
    steps = np.array([_stop_step(t) for t in trials])
    for step in np.unique(steps[ok & is_stopped]):
        group = np.flatnonzero(ok & is_stopped & (steps == step))
        # Ranks 0..n-1 (best first) as percentiles in (0, 1), then into the worse half.
        ranks = np.argsort(np.argsort(raw[group], kind="stable"), kind="stable")
        percentiles = (ranks + 0.5) / len(group)
        levels = STOPPED_QUANTILE + (1.0 - STOPPED_QUANTILE) * percentiles
        out[group] = np.quantile(raw[full], levels)
    return out


def _stop_step(trial: FrozenTrial) -> int:
    """The step a stopped run was stopped at (its last intermediate value's)."""
    return max(trial.intermediate_values) if trial.intermediate_values else 0


def _violation(trial: FrozenTrial, key: str) -> float:
    value = trial.system_attrs.get(f"constraints:{key}")
    return float(value) if value is not None else math.nan


_YEO_JOHNSON_LAMBDAS = np.linspace(-2.0, 2.0, 41)


def _yeo_johnson(values: np.ndarray, lam: float) -> np.ndarray:
    positive = values >= 0
    out = np.empty_like(values)
    vp, vn = values[positive], values[~positive]
    out[positive] = np.log1p(vp) if abs(lam) < 1e-9 else ((vp + 1) ** lam - 1) / lam
    out[~positive] = (
        -np.log1p(-vn) if abs(lam - 2) < 1e-9 else -((1 - vn) ** (2 - lam) - 1) / (2 - lam)
    )
    return out


def _standardized(values: np.ndarray) -> np.ndarray:
    """Values warped by a Yeo-Johnson power transform, then standardized.

    Objectives with heavy tails (Rosenbrock's values span five decades) otherwise leave the GP
    modelling the few huge values; the warp improved the benchmark's regret where it mattered
    and cost nothing elsewhere (measured). Lambda maximizes the normal log-likelihood on a grid
    of 41 values (scipy's optimizer took longer than the rest of an ask).
    """
    std = float(values.std())
    if std > 0 and len(values) > 3:
        z = (values - values.mean()) / std
        best, best_ll = z, -math.inf
        log_jacobian = np.sign(z) * np.log1p(np.abs(z))
        for lam in _YEO_JOHNSON_LAMBDAS:
            warped = _yeo_johnson(z, float(lam))
            variance = float(warped.var())
            if not variance > 0 or not math.isfinite(variance):
                continue
            ll = -0.5 * len(z) * math.log(variance) + (lam - 1) * float(log_jacobian.sum())
            if ll > best_ll:
                best, best_ll = warped, ll
        values = best
    std = float(values.std())
    return np.asarray((values - values.mean()) / (std if std > 0 else 1.0))


def _believing(model: GaussianProcess, pending: np.ndarray, exact: bool) -> GaussianProcess:
    """``model`` conditioned on ``pending`` points at its own predictions (kriging believer);
    ``exact``: as values of the latent function, whose uncertainty there then collapses even
    where the model sees much noise."""
    if not len(pending):
        return model
    return model.conditioned(pending, model.mean(pending), exact=exact)
