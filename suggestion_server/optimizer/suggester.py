"""The Optuna bridge: ``StudySuggester`` implements the ``Suggester`` protocol.

One in-memory study per experiment, cached per process and keyed by the experiment's version.
A call with a new version (or a changed spec) rebuilds the study from all rows; otherwise only
observations added since the last call are read, and open suggestions are reconciled with the
study's running trials. The cache is bounded (least recently used experiments are dropped) and
any error while updating a study drops it, so the next call starts from the rows again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from typing import TypeVar

from suggestion_server.optimizer.api import AssignmentValue, RowSource, SearchSpec
from suggestion_server.optimizer.conditionals import Conditioning, FilledRows, modelled_spec
from suggestion_server.optimizer.experiment_study import ExperimentStudy
from suggestion_server.optimizer.grid import grid_for
from suggestion_server.optimizer.samplers import derived_seed, sampler_for
from suggestion_server.optimizer.space import validate_spec

_log = logging.getLogger("suggestion_server.optimizer")
T = TypeVar("T")


def check_spec(spec: SearchSpec) -> None:
    """Raise ``ValueError`` naming the field if the engine cannot search ``spec``.

    ``propose`` raises the same errors; calling this when an experiment is created or updated
    turns them into a 400 before any suggestion is asked for (e.g. a grid over 1,000,000 points).
    """
    validate_spec(spec)
    if spec.kind == "grid":
        grid_for(spec)


class _Slot:
    """A cache slot: the study (once built) and the lock serializing its use."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.study: ExperimentStudy | None = None


class StudySuggester:
    """Chooses assignments with Optuna samplers over per-experiment in-memory studies.

    ``seed`` makes proposals reproducible (tests, benchmarks); None draws fresh randomness.
    ``max_cached_experiments`` bounds memory: a study at 5,000 observations is a few MiB.
    """

    def __init__(
        self,
        seed: int | None = None,
        max_cached_experiments: int = 256,
        n_startup_trials: int = 10,
    ) -> None:
        self._seed = seed
        self._max_cached = max_cached_experiments
        self._n_startup_trials = n_startup_trials
        self._slots: OrderedDict[int, _Slot] = OrderedDict()
        self._builds: defaultdict[int, int] = defaultdict(int)
        self._lock = threading.Lock()

    def propose(
        self, spec: SearchSpec, version: int, source: RowSource, for_suggestion_id: int
    ) -> dict[str, AssignmentValue]:
        """Assignments for the new suggestion ``for_suggestion_id`` (already inserted)."""
        served = Conditioning(spec).served
        return served(
            self._with_study(
                spec, version, source, for_suggestion_id, lambda s: s.propose(for_suggestion_id)
            )
        )

    def propose_batch(
        self, spec: SearchSpec, version: int, source: RowSource, suggestion_ids: Sequence[int]
    ) -> list[dict[str, AssignmentValue]]:
        """Up to ``len(suggestion_ids)`` assignments from one model (``Suggester``)."""
        if not suggestion_ids:
            return []
        served = Conditioning(spec).served
        batch = self._with_study(
            spec, version, source, suggestion_ids[0], lambda s: s.propose_batch(suggestion_ids)
        )
        return [served(params) for params in batch]

    def _with_study(
        self,
        spec: SearchSpec,
        version: int,
        source: RowSource,
        for_suggestion_id: int,
        ask: Callable[[ExperimentStudy], T],
    ) -> T:
        """``ask`` of the experiment's study, brought up to date with the rows first. With
        conditionals the study models the unconditioned space (conditionals.py)."""
        if spec.conditionals:
            spec = modelled_spec(spec)
            source = FilledRows(source, Conditioning(spec))
        slot = self._slot(spec.experiment_id)
        with slot.lock:
            try:
                study = slot.study
                if study is None or study.version != version or study.spec != spec:
                    slot.study = None
                    study = self._build(spec, version, source, for_suggestion_id)
                    slot.study = study
                else:
                    study.sync(source, for_suggestion_id)
                return ask(study)
            except BaseException:
                slot.study = None  # half-updated: rebuild from the rows next time
                raise

    def forget(self, experiment_id: int) -> None:
        """Drop any cached state for the experiment (deleted experiment, tests)."""
        with self._lock:
            self._slots.pop(experiment_id, None)

    def cached_trial_states(self, experiment_id: int) -> dict[str, int] | None:
        """Trial count per Optuna state name in the cached study; None when nothing is cached.

        COMPLETE = observations in the model, RUNNING = open suggestions, FAIL = discarded
        proposals (deleted or rolled-back suggestions, collisions asked again).
        """
        with self._lock:
            slot = self._slots.get(experiment_id)
        if slot is None:
            return None
        with slot.lock:
            return None if slot.study is None else slot.study.trial_states()

    def _slot(self, experiment_id: int) -> _Slot:
        with self._lock:
            slot = self._slots.get(experiment_id)
            if slot is None:
                slot = self._slots[experiment_id] = _Slot()
                while len(self._slots) > self._max_cached:
                    self._slots.popitem(last=False)
            else:
                self._slots.move_to_end(experiment_id)
            return slot

    def _build(
        self, spec: SearchSpec, version: int, source: RowSource, for_suggestion_id: int
    ) -> ExperimentStudy:
        started = time.perf_counter()
        with self._lock:
            self._builds[spec.experiment_id] += 1
            build_number = self._builds[spec.experiment_id]
        seed = derived_seed(self._seed, spec.experiment_id, build_number)
        study = ExperimentStudy.create(
            spec,
            version,
            sampler_for(spec, seed, n_startup_trials=self._n_startup_trials),
            seed=seed,
        )
        study.sync(source, for_suggestion_id)
        _log.info(
            "study built experiment=%s version=%s trials=%s skipped_observations=%s ms=%.0f",
            spec.experiment_id,
            version,
            sum(study.trial_states().values()),
            study.skipped_observations,
            (time.perf_counter() - started) * 1000,
        )
        return study
