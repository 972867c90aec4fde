"""Pydantic models that are the wire format (requests and responses), and request validation.

Request models are strict (a string is never silently a number) and, where the wire says so,
reject unknown keys. ``validate_body`` turns pydantic's errors into the wire's 400 messages, each
naming the field and what was expected.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Generic, Literal, TypeVar, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)

from suggestion_server.wire.errors import bad_request
from suggestion_server.wire.jsonbody import short_json
from suggestion_server.wire.metadata import METADATA_JSON_SCHEMA, validate_metadata
from suggestion_server.wire.training_monitor import TrainingMonitorIn, TrainingMonitorOut

MAX_ID = 2**63 - 1


def _to_id(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return value  # strict int validation reports the type error
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit():
            raise ValueError(f"Invalid id: {value!r} - expected a positive integer")
        value = int(value)
    if not 0 < value <= MAX_ID:
        raise ValueError(f"Invalid id: {value} - expected a positive integer")
    return value


ObjectId = Annotated[
    int,
    BeforeValidator(_to_id),
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^[0-9]+$"}]}),
]
Metadata = Annotated[Any, AfterValidator(validate_metadata), WithJsonSchema(METADATA_JSON_SCHEMA)]
AssignmentValue = Union[int, float, str]
Assignments = dict[str, AssignmentValue]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class _Lenient(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


# ----- requests -------------------------------------------------------------------------------


class BoundsIn(_Strict):
    """``{min, max}``; ``object`` is tolerated so a fetched experiment can be posted back."""

    min: float
    max: float
    object: Literal["bounds"] | None = None


class CategoricalValueIn(_Strict):
    """A category given as an object."""

    name: str
    enum_index: int | None = None
    object: Literal["categorical_value"] | None = None


class PriorIn(_Strict):
    """A double's prior: ``{name: "normal", mean, scale}`` or ``{name: "beta", shape_a,
    shape_b}``; ``object`` is tolerated so a fetched experiment can be posted back."""

    name: str
    mean: float | None = None
    scale: float | None = None
    shape_a: float | None = None
    shape_b: float | None = None
    object: Literal["normal_prior", "beta_prior"] | None = None


class ConditionalIn(_Strict):
    """A conditional of an experiment create: a name and its (string) values."""

    name: str = Field(min_length=1, max_length=100)
    values: list[str]
    object: Literal["conditional"] | None = None


class ParameterIn(_Strict):
    """One parameter of an experiment create."""

    name: str = Field(min_length=1, max_length=100)
    type: Literal["double", "int", "categorical"]
    bounds: BoundsIn | None = None
    categorical_values: list[Union[str, CategoricalValueIn]] | None = None
    transformation: Literal["log", "none"] | None = None
    grid: list[AssignmentValue] | None = None
    default_value: AssignmentValue | None = None
    prior: PriorIn | None = None
    precision: int | None = None
    conditions: dict[str, Union[str, list[str]]] | None = None
    object: Literal["parameter"] | None = None


class MetricIn(_Strict):
    """One metric of an experiment create."""

    name: str | None = Field(default=None, max_length=100)
    objective: Literal["maximize", "minimize"] | None = None
    strategy: Literal["optimize", "constraint", "store"] | None = None
    threshold: float | None = None
    object: Literal["metric"] | None = None


class LinearConstraintTermIn(_Strict):
    """One term of a linear constraint: ``weight`` times the value of parameter ``name``."""

    name: str
    weight: float
    object: Literal["constraint_term"] | None = None


class LinearConstraintIn(_Strict):
    """``sum(weight * value) >= threshold`` (greater_than) or ``<=`` (less_than)."""

    type: Literal["greater_than", "less_than"]
    threshold: float
    terms: list[LinearConstraintTermIn] = Field(min_length=1)
    object: Literal["linear_constraint"] | None = None


class ExperimentCreate(_Strict):
    """POST /v1/experiments."""

    name: str = Field(min_length=1, max_length=100)
    type: Literal["offline", "random", "grid"] | None = None
    parameters: list[ParameterIn]
    metrics: list[Union[str, MetricIn]] | None = None
    observation_budget: int | None = None
    parallel_bandwidth: int | None = None
    metadata: Metadata = None
    project: str | None = None
    conditionals: list[ConditionalIn] | None = None
    linear_constraints: list[LinearConstraintIn] | None = None
    num_solutions: int | None = None
    tasks: list[Any] | None = None
    runs_only: bool | None = None
    development: bool | None = None
    training_monitor: TrainingMonitorIn | None = None


class BoundsUpdate(_Strict):
    """New bounds for a parameter."""

    min: float
    max: float
    object: Literal["bounds"] | None = None


class ParameterUpdate(_Strict):
    """A parameter change in an experiment update: bounds or the set of categories."""

    name: str
    bounds: BoundsUpdate | None = None
    categorical_values: list[Union[str, CategoricalValueIn]] | None = None
    # Echoed fields from a fetched experiment are tolerated but must not change anything.
    type: Literal["double", "int", "categorical"] | None = None
    object: Literal["parameter"] | None = None
    # Present only to answer SigOpt's 400 ("Conditions cannot be updated for parameters").
    conditions: Any = None


class MetricUpdate(_Strict):
    """A metric change in an experiment update: its threshold."""

    name: str | None = None
    threshold: float | None = None
    object: Literal["metric"] | None = None


class ExperimentUpdate(_Strict):
    """PUT /v1/experiments/{id}: absent keys are unchanged."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    metadata: Metadata = None
    observation_budget: int | None = None
    parallel_bandwidth: int | None = None
    metrics: list[MetricUpdate] | None = None
    parameters: list[ParameterUpdate] | None = None
    state: Literal["active", "deleted"] | None = None
    project: str | None = None
    # null removes the monitor; checkpoints then follow the no-monitor rules.
    training_monitor: TrainingMonitorIn | None = None
    # Present only to answer SigOpt's 400 ("Conditionals cannot be updated for an experiment").
    conditionals: Any = None


class SuggestionCreate(_Lenient):
    """POST /v1/experiments/{id}/suggestions; unknown keys are ignored, as on the wire."""

    metadata: Metadata = None
    assignments: Assignments | None = None


class QueuedSuggestionCreate(_Strict):
    """POST /v1/experiments/{id}/queued_suggestions: the assignments to serve next."""

    assignments: Assignments
    task: None = None


class SuggestionUpdate(_Lenient):
    """PUT /v1/experiments/{id}/suggestions/{id}: only ``metadata`` is honoured."""

    metadata: Metadata = None


class ValueIn(_Strict):
    """One metric evaluation."""

    name: str | None = None
    value: float
    value_stddev: float | None = Field(default=None, ge=0)
    object: Literal["metric_evaluation"] | None = None


class ObservationCreate(_Strict):
    """POST /v1/experiments/{id}/observations: ``suggestion`` xor ``assignments``."""

    suggestion: ObjectId | None = None
    assignments: Assignments | None = None
    values: list[ValueIn] | None = None
    value: float | None = None
    value_stddev: float | None = Field(default=None, ge=0)
    failed: bool | None = None
    metadata: Metadata = None
    no_optimize: bool | None = None
    task: None = None


class ObservationUpdate(ObservationCreate):
    """PUT /v1/experiments/{id}/observations/{id}: absent keys are unchanged."""


MAX_BATCH_OBSERVATIONS = 2500


class ObservationBatchCreate(_Strict):
    """POST /v1/experiments/{id}/observations/batch: all of them or none."""

    observations: list[ObservationCreate] = Field(min_length=1, max_length=MAX_BATCH_OBSERVATIONS)
    dry_run: bool | None = None
    no_optimize: bool | None = None


# ----- responses ------------------------------------------------------------------------------


class BoundsOut(BaseModel):
    object: Literal["bounds"] = "bounds"
    min: float
    max: float


class CategoricalValueOut(BaseModel):
    object: Literal["categorical_value"] = "categorical_value"
    name: str
    enum_index: int


class ParameterOut(BaseModel):
    object: Literal["parameter"] = "parameter"
    name: str
    type: Literal["double", "int", "categorical"]
    bounds: BoundsOut | None
    categorical_values: list[CategoricalValueOut] | None
    conditions: dict[str, list[str]]
    default_value: AssignmentValue | None
    grid: list[AssignmentValue]
    precision: int | None
    prior: dict[str, Any] | None
    transformation: Literal["log"] | None


class MetricOut(BaseModel):
    object: Literal["metric"] = "metric"
    name: str | None
    objective: Literal["maximize", "minimize"]
    strategy: Literal["optimize", "constraint", "store"]
    threshold: float | None


class MetricEvaluationOut(BaseModel):
    object: Literal["metric_evaluation"] = "metric_evaluation"
    name: str | None
    value: float
    value_stddev: float | None


class ObservationOut(BaseModel):
    object: Literal["observation"] = "observation"
    id: str
    experiment: str
    suggestion: str | None
    assignments: Assignments
    values: list[MetricEvaluationOut]
    failed: bool
    metadata: dict[str, Union[str, int, float]] | None
    created: int


class ProgressOut(BaseModel):
    object: Literal["progress"] = "progress"
    observation_count: int
    observation_budget_consumed: float
    open_suggestion_count: int
    first_observation: ObservationOut | None
    last_observation: ObservationOut | None
    best_observation: ObservationOut | None


class ExperimentOut(BaseModel):
    object: Literal["experiment"] = "experiment"
    id: str
    name: str
    type: Literal["offline", "random", "grid"]
    state: Literal["active", "deleted"]
    client: str
    user: str | None
    project: str | None
    created: int
    updated: int
    development: bool
    runs_only: bool
    metadata: dict[str, Union[str, int, float]] | None
    metrics: list[MetricOut]
    parameters: list[ParameterOut]
    conditionals: list[ConditionalOut]
    linear_constraints: list[Any]
    num_solutions: int | None
    observation_budget: int | None
    parallel_bandwidth: int | None
    progress: ProgressOut | None
    # Present only on experiments created or updated with one.
    training_monitor: TrainingMonitorOut | None = None


class SuggestionOut(BaseModel):
    object: Literal["suggestion"] = "suggestion"
    id: str
    experiment: str
    assignments: Assignments
    metadata: dict[str, Union[str, int, float]] | None
    state: Literal["open", "closed"]
    created: int
    deleted: bool | None


class QueuedSuggestionOut(BaseModel):
    object: Literal["queued_suggestion"] = "queued_suggestion"
    id: str
    experiment: str
    assignments: Assignments
    created: int


class ConditionalOut(BaseModel):
    object: Literal["conditional"] = "conditional"
    name: str
    values: list[str]


class StoppingCriteriaOut(BaseModel):
    object: Literal["stopping_criteria"] = "stopping_criteria"
    should_stop: bool
    reasons: list[Literal["possible_stagnation", "observation_budget_reached"]]


class BestPracticesOut(BaseModel):
    object: Literal["best_practices"] = "best_practices"
    violations: list[str]


class BestAssignmentsOut(BaseModel):
    object: Literal["best_assignments"] = "best_assignments"
    id: str
    assignments: Assignments
    value: float | None
    value_stddev: float | None
    values: list[MetricEvaluationOut]
    metadata: dict[str, Union[str, int, float]] | None


class PagingOut(BaseModel):
    before: str | None
    after: str | None


T = TypeVar("T")


class PaginationOut(BaseModel, Generic[T]):
    object: Literal["pagination"] = "pagination"
    count: int
    data: list[T]
    paging: PagingOut


class EmptyOut(BaseModel):
    """The body of a delete: ``{}``."""


class ErrorOut(BaseModel):
    message: str
    status: int


REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    ExperimentCreate,
    ExperimentUpdate,
    SuggestionCreate,
    SuggestionUpdate,
    ObservationCreate,
    ObservationUpdate,
    ObservationBatchCreate,
    QueuedSuggestionCreate,
)

# ----- turning pydantic errors into wire messages ---------------------------------------------

_EXPECTED = {
    "int_type": "integer",
    "int_from_float": "integer",
    "float_type": "number",
    "string_type": "string",
    "bool_type": "boolean",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
    "list_type": "array",
    "none_required": "null",
}
_UNION_TAG = re.compile(r"^(str|int|float|bool|none|[A-Z]\w*)$|\[|^function-")


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    return tuple(p for p in loc if isinstance(p, int) or not _UNION_TAG.search(p))


def _dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "body"


def _describe(loc: tuple[int | str, ...], errors: list[Any], body: Any) -> str:
    first = errors[0]
    kind = first["type"]
    if kind == "missing":
        return f'Missing required json key "{_dotted(loc)}" in: {short_json(body)}'
    if kind == "value_error":
        return str(first["ctx"]["error"])
    expected = [_EXPECTED[e["type"]] for e in errors if e["type"] in _EXPECTED]
    if expected and len(expected) == len(errors):
        names = " or ".join(dict.fromkeys(expected))
        return (
            f"Invalid type for {_dotted(loc)}: {short_json(first['input'])} - expected type {names}"
        )
    messages = "; ".join(dict.fromkeys(str(e["msg"]) for e in errors if e["type"] not in _EXPECTED))
    return f"Invalid value for {_dotted(loc)}: {short_json(first['input'])} - {messages}"


M = TypeVar("M", bound=BaseModel)


def validate_body(model: type[M], body: Any) -> M:
    """Validate ``body`` against ``model`` or raise a 400 naming each offending field."""
    if not isinstance(body, dict):
        raise bad_request(f"Invalid type for body: {short_json(body)} - expected type object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    unknown = [e["loc"][0] for e in errors if e["type"] == "extra_forbidden" and len(e["loc"]) == 1]
    if unknown:
        keys = ", ".join(f"`{k}`" for k in unknown)
        raise bad_request(f"Unknown json keys {keys} in: {short_json(body)}") from None
    grouped: dict[tuple[int | str, ...], list[Any]] = {}
    for err in errors:
        if err["type"] == "extra_forbidden":
            loc = tuple(err["loc"])
            raise bad_request(
                f"Unknown json key `{loc[-1]}` in {_dotted(_clean_loc(loc[:-1]))}"
            ) from None
        grouped.setdefault(_clean_loc(tuple(err["loc"])), []).append(err)
    # Report the deepest location first: that is the one a user can act on.
    loc, errs = max(grouped.items(), key=lambda item: len(item[0]))
    raise bad_request(_describe(loc, errs, body)) from None
