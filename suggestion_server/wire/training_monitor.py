"""The experiment's ``training_monitor`` field as it arrives (SigOpt's training monitor, plus
optfleet's ``early_stopping`` rule); ``domain.training_monitor`` checks it against the metrics
and fills in the defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Steps (a checkpoint's, a rule's min_step and grace_step) stay exact as JSON numbers anywhere.
MAX_STEP = 2**53


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class ConvergenceCriterionIn(_Strict):
    """SigOpt's one criterion type: no improvement of ``metric`` within the last
    ``lookback_checkpoints`` checkpoints, once the run has ``min_checkpoints``."""

    type: Literal["convergence"]
    name: str = Field(min_length=1, max_length=100)
    metric: str | None = None
    lookback_checkpoints: int
    min_checkpoints: int


class EarlyStoppingIn(_Strict):
    """optfleet's cross-run rule: ``asha`` (successive halving at geometric rungs), ``median``
    or ``none``. Absent keys take the defaults of docs/api.md."""

    rule: Literal["asha", "median", "none"]
    metric: str | None = None
    min_step: int | None = None
    reduction_factor: int | None = None
    grace_step: int | None = None
    min_runs: int | None = None


class TrainingMonitorIn(_Strict):
    """``training_monitor`` on experiment create and update."""

    max_checkpoints: int
    early_stopping_criteria: list[ConvergenceCriterionIn] | None = None
    early_stopping: EarlyStoppingIn | None = None


class ConvergenceCriterionOut(BaseModel):
    type: Literal["convergence"]
    name: str
    metric: str | None
    lookback_checkpoints: int
    min_checkpoints: int


class EarlyStoppingOut(BaseModel):
    rule: Literal["asha", "median", "none"]
    metric: str | None
    min_step: int
    reduction_factor: int
    grace_step: int
    min_runs: int


class TrainingMonitorOut(BaseModel):
    """The experiment's ``training_monitor`` with every default filled in."""

    max_checkpoints: int
    early_stopping_criteria: list[ConvergenceCriterionOut]
    early_stopping: EarlyStoppingOut
