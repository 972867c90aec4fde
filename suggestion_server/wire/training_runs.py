"""Training runs and checkpoints on the wire: request bodies and response shapes.

SigOpt's Core-API training monitor (sigopt-runs-wire.md §4) with the union of the run fields of
§2.3 and §4.2; optfleet adds a checkpoint's ``step`` and, once a stop was answered, the run's
``stopped_at_step`` and ``stopping_reason``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from suggestion_server.wire.metadata import validate_metadata
from suggestion_server.wire.schemas import (
    Assignments,
    Metadata,
    MetricEvaluationOut,
    ObjectId,
    ValueIn,
)
from suggestion_server.wire.training_monitor import MAX_STEP

# The open-source server's limit (the hosted one said 4).
MAX_CHECKPOINT_METADATA_KEYS = 5


def _few_keys(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(value) > MAX_CHECKPOINT_METADATA_KEYS:
        raise ValueError(
            f"Expected at most {MAX_CHECKPOINT_METADATA_KEYS} keys in checkpoint metadata, got "
            f"{len(value)}"
        )
    return value


CheckpointMetadata = Annotated[Any, AfterValidator(validate_metadata), AfterValidator(_few_keys)]
_STRICT = ConfigDict(strict=True, extra="forbid")


class TrainingRunCreate(BaseModel):
    """POST /v1/experiments/{id}/training_runs: the run of one suggestion."""

    model_config = _STRICT
    suggestion: ObjectId
    metadata: Metadata = None
    name: str | None = Field(default=None, min_length=1, max_length=100)


class TrainingRunUpdate(BaseModel):
    """PUT /v1/experiments/{id}/training_runs/{id}: absent keys are unchanged."""

    model_config = _STRICT
    name: str | None = Field(default=None, min_length=1, max_length=100)
    metadata: Metadata = None
    state: Literal["completed", "failed"] | None = None


class CheckpointCreate(BaseModel):
    """POST .../training_runs/{id}/checkpoints. ``step`` (optfleet) defaults to the run's last
    step + 1, so plain SigOpt clients count checkpoints 1, 2, 3, ..."""

    model_config = _STRICT
    values: list[ValueIn]
    metadata: CheckpointMetadata = None
    step: int | None = Field(default=None, ge=0, le=MAX_STEP)


TRAINING_RUN_REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    TrainingRunCreate,
    TrainingRunUpdate,
    CheckpointCreate,
)


class TrainingRunOut(BaseModel):
    """A training run. ``stopped_at_step`` and ``stopping_reason`` appear only once a
    checkpoint's answer told the run to stop."""

    object: Literal["training_run"] = "training_run"
    id: str
    name: str | None
    state: Literal["active", "completed", "failed"]
    client: str
    user: str | None
    project: str | None
    experiment: str | None
    suggestion: str | None
    observation: str | None
    finished: bool
    completed: int | None
    created: int
    updated: int
    deleted: bool
    checkpoint_count: int
    best_checkpoint: str | None
    assignments: Assignments
    values: dict[str, MetricEvaluationOut]
    metadata: dict[str, Union[str, int, float]] | None
    stopped_at_step: int | None = None
    stopping_reason: str | None = None


class CheckpointOut(BaseModel):
    """A checkpoint with the stopping decision made when it arrived."""

    object: Literal["checkpoint"] = "checkpoint"
    id: str
    training_run: str
    created: int
    step: int
    values: list[MetricEvaluationOut]
    metadata: dict[str, Union[str, int, float]] | None
    should_stop: bool
    stopping_reasons: dict[str, bool]
