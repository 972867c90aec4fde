"""An experiment's ``training_monitor``: checked against its metrics, stored with every default
filled in (so the experiment echoes what is in effect), and read back as a ``StoppingPolicy``.

Defaults (docs/api.md): without ``early_stopping``, an experiment that lists
``early_stopping_criteria`` gets SigOpt's behaviour exactly (rule ``none``), and one that lists
neither gets ASHA. The rule's metric defaults to the first optimized metric.
"""

from __future__ import annotations

from typing import Any

from suggestion_server.domain.early_stopping import ConvergenceCriterion, Rule, StoppingPolicy
from suggestion_server.wire.errors import bad_request
from suggestion_server.wire.jsonbody import short_json
from suggestion_server.wire.training_monitor import (
    MAX_STEP,
    ConvergenceCriterionIn,
    EarlyStoppingIn,
    TrainingMonitorIn,
)

# SigOpt's limit on checkpoints per run; also the limit of runs in experiments without a monitor.
MAX_CHECKPOINTS = 200
MAX_INT32 = 2**31 - 1
DEFAULT_MIN_STEP = 1
DEFAULT_REDUCTION_FACTOR = 3
DEFAULT_MIN_RUNS = 5

StoredMonitor = dict[str, Any]


def _check_range(value: int, field: str, low: int, high: int) -> None:
    if not low <= value <= high:
        raise bad_request(
            f"Invalid value for training_monitor.{field}: {value} - expected an integer from "
            f"{low} to {high}"
        )


def _metric_named(name: str | None, metrics: list[dict[str, Any]], field: str) -> str | None:
    """``name`` if it is one of the experiment's metrics; None means the first optimized one."""
    if name is None:
        first: str | None = next(m["name"] for m in metrics if m["strategy"] == "optimize")
        return first
    known = [m["name"] for m in metrics]
    if name not in known:
        raise bad_request(
            f"Unknown metric in training_monitor.{field}: {short_json(name)} - expected one of "
            f"{short_json([k for k in known if k is not None])}"
        )
    return name


def _criterion(
    index: int, criterion: ConvergenceCriterionIn, metrics: list[dict[str, Any]]
) -> dict[str, Any]:
    where = f"early_stopping_criteria[{index}]"
    _check_range(
        criterion.lookback_checkpoints, f"{where}.lookback_checkpoints", 1, MAX_CHECKPOINTS
    )
    _check_range(criterion.min_checkpoints, f"{where}.min_checkpoints", 1, MAX_CHECKPOINTS)
    return {
        "type": "convergence",
        "name": criterion.name,
        "metric": _metric_named(criterion.metric, metrics, f"{where}.metric"),
        "lookback_checkpoints": criterion.lookback_checkpoints,
        "min_checkpoints": criterion.min_checkpoints,
    }


def _early_stopping(
    given: EarlyStoppingIn | None, sigopt_mode: bool, metrics: list[dict[str, Any]]
) -> dict[str, Any]:
    rule: Rule = given.rule if given is not None else ("none" if sigopt_mode else "asha")
    given = given or EarlyStoppingIn(rule=rule)
    min_step = DEFAULT_MIN_STEP if given.min_step is None else given.min_step
    _check_range(min_step, "early_stopping.min_step", 1, MAX_STEP)
    grace_step = min_step if given.grace_step is None else given.grace_step
    _check_range(grace_step, "early_stopping.grace_step", 1, MAX_STEP)
    factor = DEFAULT_REDUCTION_FACTOR if given.reduction_factor is None else given.reduction_factor
    _check_range(factor, "early_stopping.reduction_factor", 2, MAX_INT32)
    min_runs = DEFAULT_MIN_RUNS if given.min_runs is None else given.min_runs
    _check_range(min_runs, "early_stopping.min_runs", 1, MAX_INT32)
    return {
        "rule": rule,
        "metric": _metric_named(given.metric, metrics, "early_stopping.metric"),
        "min_step": min_step,
        "reduction_factor": factor,
        "grace_step": grace_step,
        "min_runs": min_runs,
    }


def validated_training_monitor(
    body: TrainingMonitorIn, metrics: list[dict[str, Any]]
) -> StoredMonitor:
    """The monitor to store (every default filled in), or a 400 naming the field."""
    _check_range(body.max_checkpoints, "max_checkpoints", 1, MAX_CHECKPOINTS)
    given = body.early_stopping_criteria
    criteria = [_criterion(i, c, metrics) for i, c in enumerate(given or [])]
    names = [c["name"] for c in criteria]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise bad_request(
            f"Duplicate names in training_monitor.early_stopping_criteria: {short_json(duplicates)}"
            " - each criterion needs its own name (it keys the checkpoint's stopping_reasons)"
        )
    early_stopping = _early_stopping(body.early_stopping, given is not None, metrics)
    rule = early_stopping["rule"]
    if rule in names:
        raise bad_request(
            f"Invalid name in training_monitor.early_stopping_criteria: {short_json(rule)} - the "
            "early_stopping rule's key in stopping_reasons; choose another name"
        )
    return {
        "max_checkpoints": body.max_checkpoints,
        "early_stopping_criteria": criteria,
        "early_stopping": early_stopping,
    }


def stopping_policy(
    stored: StoredMonitor | None, metrics: list[dict[str, Any]]
) -> StoppingPolicy | None:
    """The policy of a stored monitor; None for an experiment without one."""
    if stored is None:
        return None
    rule = stored["early_stopping"]
    return StoppingPolicy(
        max_checkpoints=stored["max_checkpoints"],
        criteria=tuple(
            ConvergenceCriterion(
                name=c["name"],
                metric=c["metric"],
                lookback_checkpoints=c["lookback_checkpoints"],
                min_checkpoints=c["min_checkpoints"],
            )
            for c in stored["early_stopping_criteria"]
        ),
        rule=rule["rule"],
        metric=rule["metric"],
        min_step=rule["min_step"],
        reduction_factor=rule["reduction_factor"],
        grace_step=rule["grace_step"],
        min_runs=rule["min_runs"],
        maximize={m["name"]: m["objective"] == "maximize" for m in metrics},
    )
