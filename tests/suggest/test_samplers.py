"""The cached-representation TPE proposes exactly what Optuna's TPE proposes."""

from __future__ import annotations

import random

import optuna
import pytest
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState, create_trial

from suggestion_server.optimizer.samplers import CachedReprTPESampler

SPACE: dict[str, BaseDistribution] = {
    "lr": FloatDistribution(1e-5, 1.0, log=True),
    "x": FloatDistribution(-3.0, 3.0),
    "n": IntDistribution(1, 50),
    "act": CategoricalDistribution(("relu", "tanh", "gelu")),
}


def proposals(
    sampler: optuna.samplers.BaseSampler, directions: list[str]
) -> list[dict[str, object]]:
    study = optuna.create_study(
        storage=optuna.storages.InMemoryStorage(),
        sampler=sampler,
        directions=directions,  # type: ignore[arg-type]
    )
    rng = random.Random(0)
    for i in range(120):
        params = {
            "lr": 10 ** rng.uniform(-5, 0),
            "x": rng.uniform(-3, 3),
            "n": rng.randint(1, 50),
            "act": rng.choice(["relu", "tanh", "gelu"]),
        }
        if i % 17 == 0:
            del params["n"]  # some trials lack a parameter (added to the space later)
        failed = i % 11 == 0
        study.add_trial(
            create_trial(
                state=TrialState.RUNNING if i % 13 == 0 else TrialState.COMPLETE,
                params=params,
                distributions={k: SPACE[k] for k in params},
                values=None if i % 13 == 0 else [rng.random() for _ in directions],
                constraints={"failed": 1.0} if failed and i % 13 else None,
            )
        )
    out: list[dict[str, object]] = []
    for _ in range(25):
        trial = study.ask(dict(SPACE))
        out.append(dict(trial.params))
        study.tell(trial, [float(trial.params["x"]) ** 2 for _ in directions])
    return out


@pytest.mark.parametrize("directions", [["minimize"], ["maximize", "minimize"]])
def test_cached_representation_changes_nothing(directions: list[str]) -> None:
    kwargs = {"seed": 4, "multivariate": True, "constant_liar": True}
    expected = proposals(optuna.samplers.TPESampler(**kwargs), directions)  # type: ignore[arg-type]
    assert proposals(CachedReprTPESampler(**kwargs), directions) == expected
