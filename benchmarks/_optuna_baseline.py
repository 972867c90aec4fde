"""The baseline: Optuna used directly on its RDB storage (ask + tell), same space and objective."""

from __future__ import annotations

import datetime
import random
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState, create_trial

from benchmarks._api import loss_of, random_assignments

T = TypeVar("T")

optuna.logging.set_verbosity(optuna.logging.ERROR)
warnings.filterwarnings("ignore", module="optuna")

DISTRIBUTIONS: dict[str, BaseDistribution] = {
    "lr": FloatDistribution(1e-5, 1.0, log=True),
    "momentum": FloatDistribution(0.0, 1.0),
    "units": IntDistribution(1, 100),
    "activation": CategoricalDistribution(("relu", "tanh", "gelu")),
    "shift": FloatDistribution(-5.0, 5.0),
}


def rdb_study(url: str, name: str, seed: int = 0) -> optuna.Study:
    """A new TPE study (Optuna 5 defaults: constant liar on) on ``optuna.storages.RDBStorage``."""
    storage = optuna.storages.RDBStorage(url)
    return optuna.create_study(
        storage=storage,
        study_name=name,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
    )


def _in_threads(count: int, workers: int, task: Callable[[int], T]) -> list[T]:
    if workers <= 1:
        return [task(i) for i in range(count)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(task, range(count)))


def add_finished_trials(study: optuna.Study, count: int, seed: int, workers: int = 1) -> None:
    """``count`` finished trials (5% FAIL), as the server's seeded observations."""

    def one(i: int) -> None:
        rng = random.Random(seed * 1_000_003 + i)
        assignments = random_assignments(rng)
        failed = rng.random() < 0.05
        study.add_trial(
            create_trial(
                state=TrialState.FAIL if failed else TrialState.COMPLETE,
                params=assignments,
                distributions=DISTRIBUTIONS,
                value=None if failed else loss_of(assignments),
            )
        )

    _in_threads(count, workers, one)


def bulk_add_finished_trials(url: str, study: optuna.Study, count: int, seed: int) -> None:
    """The same trials as ``add_finished_trials``, inserted in one transaction (seeding only).

    ``add_trial`` is one transaction per trial (~50 ms each here under load): seeding 5,000
    would dominate the benchmark's runtime. Rows are written with Optuna's own ORM models, as
    its storage writes them; the timed operations use the public API only.
    """
    from optuna.distributions import distribution_to_json
    from optuna.storages._rdb import models

    storage = optuna.storages.RDBStorage(url)
    session = storage.scoped_session()
    try:
        first = session.query(models.TrialModel).filter_by(study_id=study._study_id).count()
        now = datetime.datetime.now()
        for i in range(count):
            rng = random.Random(seed * 1_000_003 + i)
            assignments = random_assignments(rng)
            failed = rng.random() < 0.05
            trial = models.TrialModel(
                number=first + i,
                study_id=study._study_id,
                state=TrialState.FAIL if failed else TrialState.COMPLETE,
            )
            trial.datetime_start = now
            trial.datetime_complete = now
            trial.params = [
                models.TrialParamModel(
                    param_name=name,
                    param_value=DISTRIBUTIONS[name].to_internal_repr(value),
                    distribution_json=distribution_to_json(DISTRIBUTIONS[name]),
                )
                for name, value in assignments.items()
            ]
            if not failed:
                trial.values = [
                    models.TrialValueModel(
                        objective=0,
                        value=loss_of(assignments),
                        value_type=models.TrialValueModel.TrialValueType.FINITE,
                    )
                ]
            session.add(trial)
        session.commit()
    finally:
        session.close()
        storage.engine.dispose()


def add_running_trials(study: optuna.Study, count: int, seed: int, workers: int = 1) -> list[int]:
    """``count`` RUNNING trials (the open suggestions of parallel workers); their trial ids."""

    def one(i: int) -> int:
        trial = create_trial(
            state=TrialState.RUNNING,
            params=random_assignments(random.Random(seed * 7_000_003 + i)),
            distributions=DISTRIBUTIONS,
        )
        return study._storage.create_new_trial(study._study_id, template_trial=trial)

    return _in_threads(count, workers, one)


def fail_trials(study: optuna.Study, trial_ids: list[int]) -> None:
    """End running trials as FAIL (the baseline's way to drop open suggestions)."""
    for trial_id in trial_ids:
        study._storage.set_trial_state_values(trial_id, TrialState.FAIL)


def ask_and_tell(study: optuna.Study, samples: int) -> tuple[list[float], list[float]]:
    """Milliseconds of each ``ask`` (new suggestion) and ``tell`` (its observation)."""
    asks: list[float] = []
    tells: list[float] = []
    for _ in range(samples):
        started = time.perf_counter()
        trial = study.ask(dict(DISTRIBUTIONS))
        asked = time.perf_counter()
        params: dict[str, Any] = dict(trial.params)
        study.tell(trial, loss_of(params))
        told = time.perf_counter()
        asks.append((asked - started) * 1000)
        tells.append((told - asked) * 1000)
    return asks, tells


def cold_first_ask(url: str, name: str) -> float:
    """Milliseconds to open the storage afresh (a restarted process) and ask once."""
    started = time.perf_counter()
    study = optuna.load_study(study_name=name, storage=optuna.storages.RDBStorage(url))
    trial = study.ask(dict(DISTRIBUTIONS))
    elapsed = (time.perf_counter() - started) * 1000
    study.tell(trial, loss_of(dict(trial.params)))
    return elapsed
