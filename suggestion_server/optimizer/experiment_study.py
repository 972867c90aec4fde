"""One experiment's in-memory Optuna study, kept in step with the stored rows.

Trials mirror rows: every usable observation is a finished trial, every open suggestion a RUNNING
trial (so the constant-liar TPE sees work in flight and does not propose it again).

Failed observations steer the sampler away: TPE ignores FAIL trials, so a failed observation is
stored as a COMPLETE trial that violates a constraint (``failed = 1.0``), with a placeholder value
equal to the worst value observed so far (0.0 before any). Optuna's TPE puts infeasible trials in
its "bad" group (behind every feasible trial), so the density of good points is not drawn there
while the bad density is; the Gaussian process models them at the worst value. Because they are
COMPLETE they also count towards the start-up design: an experiment whose first ten evaluations
fail starts modelling after those ten instead of sampling at random forever.

Stopped runs (an observation whose training run was told to stop early, ``stopped_at_step``
set) are configurations seen to be losing, neither failures nor full-fidelity values. For one
objective they are PRUNED trials whose one intermediate value is the observed value at the stop,
as Optuna's pruners leave them: TPE ranks them after every complete trial (later stop first,
then value), and the Gaussian process models them no better than the worst full-length value
(gp/proposer.py). For two objectives (TPE's ranking of pruned trials needs one direction) they
are COMPLETE trials at values no better than the worst full-length value of each objective.
They never change the worst values that failures are placed at.

Every finished trial carries the same constraints (``failed``: 0 or 1, and ``metric:NAME`` per
constraint metric: how far the value is on the wrong side of its threshold, NaN when unknown), so
samplers that require one constraint vector per trial accept them.
"""

from __future__ import annotations

import bisect
import datetime
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import InMemoryStorage
from optuna.trial import FrozenTrial, TrialState

from suggestion_server.optimizer.api import (
    AssignmentValue,
    ObservationRow,
    OpenSuggestionRow,
    RowSource,
    SearchSpec,
)
from suggestion_server.optimizer.conditionals import Conditioning
from suggestion_server.optimizer.fleet_sampler import FleetSampler
from suggestion_server.optimizer.gp.proposer import FAILED_CONSTRAINT, metric_constraint_key
from suggestion_server.optimizer.grid import Grid, free_point, grid_for
from suggestion_server.optimizer.space import distributions_for, params_within, validate_spec

# Where FrozenTrial.set_constraint keeps a named constraint (read by TPE's _split_trials).
FAILED_CONSTRAINT_KEY = f"constraints:{FAILED_CONSTRAINT}"

# Observation ids come from one sequence; on PostgreSQL a transaction that took a smaller id can
# commit after one with a larger id was already read (unless the store serializes observation
# inserts per experiment, as it does today). Re-reading the newest ids seen (and skipping those
# already known) picks such late commits up; this many observations of one experiment would have
# to be read while one insert is still uncommitted to miss it.
REREAD_WINDOW = 128

# Proposals asked again when they collide with an open suggestion (see _ask_avoiding_open).
ASK_RETRIES = 8


class _AppendingInMemoryStorage(InMemoryStorage):
    """InMemoryStorage that can append trials we built ourselves without deep-copying them.

    ``create_new_trial`` deep-copies its template (≈ 0.1 ms per trial): a third of a cold rebuild
    at 5,000 observations. The trials appended here are fresh objects nobody else holds; their
    ``distributions`` dict may be shared between trials and is never mutated.
    """

    def append_trial(self, study_id: int, trial: FrozenTrial) -> int:
        """Add ``trial`` (state, params, values as given) and return its trial id."""
        with self._lock:
            self._check_study_id(study_id)
            trial_id = self._max_trial_id + 1
            self._max_trial_id = trial_id
            trials = self._studies[study_id].trials
            trial.number = len(trials)
            trial._trial_id = trial_id
            self._trial_id_to_study_id_and_number[trial_id] = (study_id, trial.number)
            trials.append(trial)
            self._update_cache(trial_id, study_id)
            return trial_id


@dataclass
class _RunningTrial:
    trial_id: int
    params: dict[str, AssignmentValue]


@dataclass
class ExperimentStudy:
    """The study of one experiment at one version, plus which row each trial stands for."""

    spec: SearchSpec
    version: int
    sampler: optuna.samplers.BaseSampler
    distributions: dict[str, BaseDistribution]
    study: optuna.Study
    storage: _AppendingInMemoryStorage
    running: dict[int, _RunningTrial] = field(default_factory=dict)
    seen_observation_ids: set[int] = field(default_factory=set)
    recent_observation_ids: list[int] = field(default_factory=list)
    worst_values: list[float] | None = None
    skipped_observations: int = 0
    grid: Grid | None = None
    _rng: random.Random = field(default_factory=random.Random)
    # Proposals in canonical form: inactive parameters at their placeholders (conditionals.py).
    conditioning: Conditioning | None = None

    @classmethod
    def create(
        cls,
        spec: SearchSpec,
        version: int,
        sampler: optuna.samplers.BaseSampler,
        seed: int | None = None,
    ) -> ExperimentStudy:
        """An empty study for ``spec``; ``ValueError`` if the spec cannot be searched."""
        validate_spec(spec)
        # Rejects unusable grids before anything is cached.
        grid = grid_for(spec) if spec.kind == "grid" else None
        storage = _AppendingInMemoryStorage()
        study = optuna.create_study(
            storage=storage,
            sampler=sampler,
            directions=list(spec.directions),
            study_name=f"experiment-{spec.experiment_id}",
        )
        return cls(
            spec=spec,
            version=version,
            sampler=sampler,
            distributions=distributions_for(spec),
            study=study,
            storage=storage,
            grid=grid,
            _rng=random.Random(seed),  # noqa: S311 - sampling, not security
            conditioning=Conditioning(spec) if spec.conditionals else None,
        )

    def sync(self, source: RowSource, for_suggestion_id: int) -> None:
        """Bring the trials in line with the rows (observations first, then open suggestions)."""
        # Observations before open suggestions: if an observation commits between the two
        # reads, its suggestion's running trial is discarded now and the observation added as a
        # new trial next time, rather than the suggestion being counted twice.
        self._add_observations(
            source.observations_after(self._reread_floor(), self.seen_observation_ids)
        )
        self._reconcile_open(
            [row for row in source.open_suggestions() if row.id != for_suggestion_id],
            for_suggestion_id,
        )

    def _reread_floor(self) -> int:
        recent = self.recent_observation_ids
        return recent[-REREAD_WINDOW] - 1 if len(recent) >= REREAD_WINDOW else 0

    def _add_observations(self, rows: Sequence[ObservationRow]) -> None:
        for row in rows:
            if row.id in self.seen_observation_ids:
                continue
            self.seen_observation_ids.add(row.id)
            bisect.insort(self.recent_observation_ids, row.id)
            if len(self.recent_observation_ids) > 2 * REREAD_WINDOW:
                del self.recent_observation_ids[:REREAD_WINDOW]
            self._add_observation(row)

    def _add_observation(self, row: ObservationRow) -> None:
        params = params_within(row.assignments, self.distributions)
        values = self._trial_values(row)
        running = self.running.pop(row.suggestion_id, None) if row.suggestion_id else None
        if not params or values is None:
            self.skipped_observations += 1
            if running is not None:
                self._discard(running)
            return
        constraints = self._constraints_of(row)
        state, intermediate = TrialState.COMPLETE, {}
        if self._is_stopped(row) and len(values) == 1:
            state, intermediate = TrialState.PRUNED, {row.stopped_at_step or 0: values[0]}
        trial_values = values if state == TrialState.COMPLETE else None
        if running is not None and running.params == params:
            # Complete the trial the suggestion already had (keeps the trial count honest).
            for name, value in constraints.items():
                self.storage.set_trial_system_attr(running.trial_id, f"constraints:{name}", value)
            for step, value in intermediate.items():
                self.storage.set_trial_intermediate_value(running.trial_id, step, value)
            self.storage.set_trial_state_values(running.trial_id, state, trial_values)
            return
        if running is not None:
            self._discard(running)
        self._append(
            params,
            state,
            trial_values,
            constraints=constraints,
            intermediate=intermediate,
        )

    @staticmethod
    def _is_stopped(row: ObservationRow) -> bool:
        """Whether the row is a run stopped early (failures stay failures)."""
        return row.stopped_at_step is not None and not row.failed

    def _constraints_of(self, row: ObservationRow) -> dict[str, float]:
        """The trial constraints of an observation (≤ 0 is feasible; see module doc)."""
        constraints = {FAILED_CONSTRAINT: 1.0 if row.failed else 0.0}
        for metric in self.spec.constraint_metrics:
            value = None if row.failed or row.values is None else row.values.get(metric.name)
            if value is None or not math.isfinite(value):
                constraints[metric_constraint_key(metric.name)] = math.nan
            elif metric.objective == "maximize":
                constraints[metric_constraint_key(metric.name)] = metric.threshold - value
            else:
                constraints[metric_constraint_key(metric.name)] = value - metric.threshold
        return constraints

    def _trial_values(self, row: ObservationRow) -> list[float] | None:
        """Objective values for the trial, a placeholder for failures, None if unusable."""
        if row.failed:
            return (
                list(self.worst_values)
                if self.worst_values
                else [0.0] * len(self.spec.metric_names)
            )
        if row.values is None:
            return None
        values: list[float] = []
        for name in self.spec.metric_names:
            value = row.values.get(name)
            if value is None or not math.isfinite(value):
                return None
            values.append(float(value))
        if self._is_stopped(row):
            return self._no_better_than_worst(values) if len(values) > 1 else values
        self._track_worst(values)
        return values

    def _no_better_than_worst(self, values: list[float]) -> list[float]:
        """A stopped run's values for two objectives: each no better than the worst
        full-length value of its objective (as observed, before any full-length value)."""
        if self.worst_values is None:
            return values
        return [
            min(value, worst) if direction == "maximize" else max(value, worst)
            for direction, value, worst in zip(self.spec.directions, values, self.worst_values)
        ]

    def _track_worst(self, values: list[float]) -> None:
        if self.worst_values is None:
            self.worst_values = list(values)
            return
        for i, (direction, value) in enumerate(zip(self.spec.directions, values)):
            worse = (
                value < self.worst_values[i]
                if direction == "maximize"
                else (value > self.worst_values[i])
            )
            if worse:
                self.worst_values[i] = value

    def _reconcile_open(self, rows: Sequence[OpenSuggestionRow], for_suggestion_id: int) -> None:
        open_ids = {row.id for row in rows}
        for suggestion_id in [sid for sid in self.running if sid not in open_ids]:
            # Not open and no observation seen: deleted, or its creating transaction rolled back.
            # A reused id (SQLite rowids) is also replaced here.
            self._discard(self.running.pop(suggestion_id))
        stale = self.running.pop(for_suggestion_id, None)
        if stale is not None:
            self._discard(stale)
        for row in rows:
            if row.id in self.running:
                continue
            params = params_within(row.assignments, self.distributions)
            if params:
                self.running[row.id] = _RunningTrial(
                    self._append(params, TrialState.RUNNING, None), params
                )

    def _append(
        self,
        params: dict[str, AssignmentValue],
        state: TrialState,
        values: list[float] | None,
        constraints: dict[str, float] | None = None,
        intermediate: dict[int, float] | None = None,
    ) -> int:
        # Built directly rather than with optuna.trial.create_trial, whose per-trial validation
        # and distribution conversion were half of a cold rebuild; params_within() has already
        # checked every value against these distributions.
        distributions = (
            self.distributions
            if len(params) == len(self.distributions)
            else {name: self.distributions[name] for name in params}
        )
        now = datetime.datetime.now()
        trial = FrozenTrial(
            number=-1,
            state=state,
            value=None,
            values=values,
            datetime_start=now,
            datetime_complete=now if state.is_finished() else None,
            params=dict(params),
            distributions=distributions,
            user_attrs={},
            # FrozenTrial.set_constraint's storage format, as TPE's _split_trials reads it.
            system_attrs={f"constraints:{k}": v for k, v in (constraints or {}).items()},
            intermediate_values=dict(intermediate or {}),
            trial_id=-1,
        )
        return self.storage.append_trial(self.study._study_id, trial)

    def _discard(self, running: _RunningTrial) -> None:
        self.storage.set_trial_state_values(running.trial_id, TrialState.FAIL)

    def propose(self, for_suggestion_id: int) -> dict[str, AssignmentValue]:
        """New assignments, recorded as the RUNNING trial of ``for_suggestion_id``."""
        if self.spec.kind == "grid":
            params = self._next_grid_point()
            trial_id = self._append(params, TrialState.RUNNING, None)
        else:
            trial_id, params = self._ask_avoiding_open()
        self.running[for_suggestion_id] = _RunningTrial(trial_id, params)
        return dict(params)

    def propose_batch(self, suggestion_ids: Sequence[int]) -> list[dict[str, AssignmentValue]]:
        """Model-based assignments for up to all of ``suggestion_ids`` at once (in order), each
        recorded as its RUNNING trial; fewer (maybe none) when the sampler cannot batch."""
        if self.spec.kind == "grid" or not isinstance(self.sampler, FleetSampler):
            return []
        batch = self.sampler.propose_batch(self.study, len(suggestion_ids))
        for suggestion_id, params in zip(suggestion_ids, batch):
            trial_id = self._append(params, TrialState.RUNNING, None)
            self.running[suggestion_id] = _RunningTrial(trial_id, params)
        return [dict(params) for params in batch]

    def _ask_avoiding_open(self) -> tuple[int, dict[str, AssignmentValue]]:
        """Ask the sampler; never return the assignments of an open suggestion if avoidable.

        The constant liar makes TPE avoid open points once it models, but before
        ``n_startup_trials`` observations (and for the random type) sampling is uniform, and on a
        small discrete space parallel workers would collide. A colliding proposal is discarded
        and asked again; after ``ASK_RETRIES`` a finite space is enumerated for a free point.
        """
        open_points = {_point_key(r.params) for r in self.running.values()}
        for _ in range(ASK_RETRIES):
            trial = self.study.ask(dict(self.distributions))
            params = {name: _plain(value) for name, value in trial.params.items()}
            trial_id = self._canonical_trial(trial._trial_id, params)
            params = self._canonical(params)
            if _point_key(params) not in open_points:
                return trial_id, params
            self.storage.set_trial_state_values(trial_id, TrialState.FAIL)
        free = free_point(self.spec, open_points, self._rng)
        if free is not None and _point_key(self._canonical(free)) not in open_points:
            free = self._canonical(free)
            return self._append(free, TrialState.RUNNING, None), free
        # Every point of the space is open already: a duplicate cannot be avoided.
        trial = self.study.ask(dict(self.distributions))
        params = {name: _plain(value) for name, value in trial.params.items()}
        return self._canonical_trial(trial._trial_id, params), self._canonical(params)

    def _canonical(self, params: dict[str, AssignmentValue]) -> dict[str, AssignmentValue]:
        return params if self.conditioning is None else self.conditioning.filled(params)

    def _canonical_trial(self, trial_id: int, params: dict[str, AssignmentValue]) -> int:
        """The asked trial, or (a sampler that set inactive parameters at random) a trial with
        them at their placeholders in its place: every trial holds canonical points."""
        canonical = self._canonical(params)
        if canonical == params:
            return trial_id
        self.storage.set_trial_state_values(trial_id, TrialState.FAIL)
        return self._append(canonical, TrialState.RUNNING, None)

    def _next_grid_point(self) -> dict[str, AssignmentValue]:
        if self.grid is None:
            raise RuntimeError(f"experiment {self.spec.experiment_id} is not a grid experiment")
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        trials = self.study._get_trials(deepcopy=False, states=states)
        return self.grid.next_point(self.grid.visit_counts(_as_params(t.params) for t in trials))

    def trial_states(self) -> dict[str, int]:
        """How many trials the study holds per state name (COMPLETE, RUNNING, FAIL)."""
        counts: dict[str, int] = {}
        for trial in self.study._get_trials(deepcopy=False):
            counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
        return counts


def _point_key(params: Mapping[str, AssignmentValue]) -> tuple[tuple[str, AssignmentValue], ...]:
    return tuple(sorted(params.items()))


def _plain(value: Any) -> AssignmentValue:
    """Optuna returns numpy-free Python values already; keep the declared value types."""
    if isinstance(value, (bool,)):
        return int(value)
    if isinstance(value, (int, float, str)):
        return value
    raise TypeError(f"unexpected parameter value {value!r} from the sampler")


def _as_params(params: Mapping[str, Any]) -> dict[str, AssignmentValue]:
    return {name: _plain(value) for name, value in params.items()}
