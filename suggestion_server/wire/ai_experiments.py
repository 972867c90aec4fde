"""AI experiments on the wire (sigopt-runs-wire.md §2.1): a Core experiment body with ``budget``
instead of ``observation_budget``, and the AIExperiment object."""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel

from suggestion_server.wire.errors import ApiError, bad_request
from suggestion_server.wire.jsonbody import short_json
from suggestion_server.wire.schemas import MetricOut, ParameterOut

# Core experiment keys an AI experiment does not take (400 as unknown keys, as the open-source
# server answers): the budget is ``budget``, the project is in the path, runs are implied.
CORE_ONLY_KEYS = frozenset(
    {"observation_budget", "project", "runs_only", "tasks", "development", "metric"}
)
MAX_BUDGET = 2**31 - 1


def _checked_budget(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_BUDGET:
        raise bad_request(
            f"Invalid value for budget: {short_json(value)} - expected a positive integer "
            "(or no budget key: the experiment then never finishes)"
        )
    return value


def core_experiment_body(body: dict[str, Any], core_keys: set[str]) -> dict[str, Any]:
    """The Core experiment create/update body for an AI experiment body: unknown keys (also
    the Core-only ones) are a 400 naming them; ``budget`` becomes ``observation_budget``."""
    allowed = (core_keys - CORE_ONLY_KEYS) | {"budget"}
    unknown = [key for key in body if key not in allowed]
    if unknown:
        keys = ", ".join(f"`{key}`" for key in unknown)
        hint = " (an AI experiment's budget is `budget`)" if "observation_budget" in unknown else ""
        raise bad_request(f"Unknown json keys {keys} in: {short_json(body)}{hint}")
    core = {key: value for key, value in body.items() if key != "budget"}
    if "budget" in body:
        core["observation_budget"] = _checked_budget(body["budget"])
    return core


def ai_message(message: str) -> str:
    """A Core experiment message as an AI experiment's user reads it (their field is
    ``budget``)."""
    return message.replace("observation_budget", "budget")


def moved_to_ai_experiment(experiment_id: int) -> ApiError:
    """The Core route's answer for an AI experiment: 301 to its /aiexperiments path."""
    location = f"/v1/aiexperiments/{experiment_id}"
    return ApiError(
        301,
        f"Experiment {experiment_id} is an AI experiment; it moved to {location}",
        headers={"Location": location},
    )


class AIProgressOut(BaseModel):
    """Runs of the experiment (non-deleted); ``remaining_budget`` = budget - total, null
    without a budget."""

    object: Literal["progress"] = "progress"
    finished_run_count: int
    active_run_count: int
    total_run_count: int
    remaining_budget: int | None


class AIExperimentOut(BaseModel):
    """An AI experiment: the Core experiment object with ``budget`` instead of
    ``observation_budget``, ``project``, ``runs_only: true`` and run progress."""

    object: Literal["aiexperiment"] = "aiexperiment"
    id: str
    name: str
    type: Literal["offline", "random", "grid"]
    state: Literal["active", "deleted"]
    client: str
    user: str | None
    project: str
    created: int
    updated: int
    runs_only: bool
    metadata: dict[str, Union[str, int, float]] | None
    metrics: list[MetricOut]
    parameters: list[ParameterOut]
    conditionals: list[Any]
    linear_constraints: list[Any]
    num_solutions: int | None
    budget: int | None
    parallel_bandwidth: int | None
    progress: AIProgressOut
