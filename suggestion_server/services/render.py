"""Rows to wire objects (plain dicts shaped exactly like the models in ``schemas``)."""

from __future__ import annotations

import json
from typing import Any

from suggestion_server.storage.models import (
    Checkpoint,
    Experiment,
    Observation,
    QueuedSuggestion,
    Suggestion,
    TrainingRun,
)
from suggestion_server.storage.queries import Page, ProgressRows, loads


def suggestion_json(row: Suggestion | Any, *, just_created: bool = False) -> dict[str, Any]:
    """A suggestion; the wire's create response says ``deleted: null`` (list/detail: a bool)."""
    return {
        "object": "suggestion",
        "id": str(row.id),
        "experiment": str(row.experiment_id),
        "assignments": json.loads(row.assignments_json),
        "metadata": loads(row.metadata_json),
        "state": "closed" if row.closed else "open",
        "created": row.created,
        "deleted": None if just_created else row.deleted,
    }


def queued_suggestion_json(row: QueuedSuggestion) -> dict[str, Any]:
    """A queued suggestion."""
    return {
        "object": "queued_suggestion",
        "id": str(row.id),
        "experiment": str(row.experiment_id),
        "assignments": json.loads(row.assignments_json),
        "created": row.created,
    }


def _metric_evaluations(values_json: str) -> list[dict[str, Any]]:
    return [{"object": "metric_evaluation", **entry} for entry in json.loads(values_json)]


def observation_json(row: Observation) -> dict[str, Any]:
    """An observation (``values`` only, no top-level ``value``, as on the wire)."""
    return {
        "object": "observation",
        "id": str(row.id),
        "experiment": str(row.experiment_id),
        "suggestion": None if row.suggestion_id is None else str(row.suggestion_id),
        "assignments": json.loads(row.assignments_json),
        "values": _metric_evaluations(row.values_json),
        "failed": row.failed,
        "metadata": loads(row.metadata_json),
        "created": row.created,
    }


def best_assignments_json(row: Observation) -> dict[str, Any]:
    """A ``best_assignments`` entry for an observation."""
    values = _metric_evaluations(row.values_json)
    single = values[0] if len(values) == 1 else None
    return {
        "object": "best_assignments",
        "id": str(row.id),
        "assignments": json.loads(row.assignments_json),
        "value": None if single is None else single["value"],
        "value_stddev": None if single is None else single["value_stddev"],
        "values": values,
        "metadata": loads(row.metadata_json),
    }


def progress_json(progress: ProgressRows) -> dict[str, Any]:
    """``progress`` of a core experiment, plus ``open_suggestion_count`` (our extension)."""

    def maybe(row: Observation | None) -> dict[str, Any] | None:
        return None if row is None else observation_json(row)

    return {
        "object": "progress",
        "observation_count": progress.observation_count,
        "observation_budget_consumed": float(progress.observation_count),
        "open_suggestion_count": progress.open_suggestion_count,
        "first_observation": maybe(progress.first),
        "last_observation": maybe(progress.last),
        "best_observation": maybe(progress.best),
    }


def _parameter_json(p: dict[str, Any]) -> dict[str, Any]:
    categories = p.get("categories")
    return {
        "object": "parameter",
        "name": p["name"],
        "type": p["type"],
        "bounds": None
        if categories is not None
        else {"object": "bounds", "min": p["min"], "max": p["max"]},
        "categorical_values": None
        if categories is None
        else [
            {"object": "categorical_value", "name": name, "enum_index": i + 1}
            for i, name in enumerate(categories)
        ],
        "conditions": p.get("conditions") or {},
        "default_value": p.get("default_value"),
        "grid": p.get("grid", []),
        "precision": p.get("precision"),
        "prior": _prior_json(p.get("prior")),
        "transformation": "log" if p.get("log") else None,
    }


def _prior_json(prior: Any) -> Any:
    """A validated prior as the open-source server renders it (``object`` first); anything else
    stored before priors were validated, as it was given."""
    if (
        isinstance(prior, dict)
        and prior.get("name") in ("normal", "beta")
        and "object" not in prior
    ):
        return {"object": f"{prior['name']}_prior", **prior}
    return prior


def experiment_json(row: Experiment, progress: ProgressRows | None) -> dict[str, Any]:
    """An experiment (parameters sorted by name); ``training_monitor`` only when it has one, so
    every other experiment reads exactly as before."""
    params = sorted(json.loads(row.parameters_json), key=lambda p: p["name"])
    rendered = {
        "object": "experiment",
        "id": str(row.id),
        "name": row.name,
        "type": row.type,
        "state": row.state,
        "client": str(row.client_id),
        "user": None,
        "project": row.project,
        "created": row.created,
        "updated": row.updated,
        "development": False,
        "runs_only": row.runs_only,
        "metadata": loads(row.metadata_json),
        "metrics": [{"object": "metric", **m} for m in json.loads(row.metrics_json)],
        "parameters": [_parameter_json(p) for p in params],
        "conditionals": [
            {"object": "conditional", "name": c["name"], "values": c["values"]}
            for c in loads(row.conditionals_json) or []
        ],
        "linear_constraints": loads(row.linear_constraints_json) or [],
        "num_solutions": None,
        "observation_budget": row.observation_budget,
        "parallel_bandwidth": row.parallel_bandwidth,
        "progress": None if progress is None else progress_json(progress),
    }
    if row.training_monitor_json is not None:
        rendered["training_monitor"] = json.loads(row.training_monitor_json)
    return rendered


def training_run_json(row: TrainingRun) -> dict[str, Any]:
    """A training run: the fields of SigOpt's Core training monitor and of its runs, plus
    ``stopped_at_step``/``stopping_reason`` once a stop was answered."""

    def maybe_id(value: int | None) -> str | None:
        return None if value is None else str(value)

    rendered = {
        "object": "training_run",
        "id": str(row.id),
        "name": row.name,
        "state": row.state,
        "client": str(row.client_id),
        "user": None,
        "project": row.project,
        "experiment": maybe_id(row.experiment_id),
        "suggestion": maybe_id(row.suggestion_id),
        "observation": maybe_id(row.observation_id),
        "finished": row.observation_id is not None or row.completed is not None,
        "completed": row.completed,
        "created": row.created,
        "updated": row.updated,
        "deleted": row.deleted,
        "checkpoint_count": row.checkpoint_count,
        "best_checkpoint": maybe_id(row.best_checkpoint_id),
        "assignments": json.loads(row.assignments_json),
        "values": {
            name: {"object": "metric_evaluation", **entry}
            for name, entry in json.loads(row.values_json).items()
        },
        "metadata": loads(row.metadata_json),
    }
    if row.stopped_at_step is not None:
        rendered["stopped_at_step"] = row.stopped_at_step
        rendered["stopping_reason"] = row.stopping_reason
    return rendered


def checkpoint_json(row: Checkpoint) -> dict[str, Any]:
    """A checkpoint with the decision answered when it arrived."""
    return {
        "object": "checkpoint",
        "id": str(row.id),
        "training_run": str(row.training_run_id),
        "created": row.created,
        "step": row.step,
        "values": _metric_evaluations(row.values_json),
        "metadata": loads(row.metadata_json),
        "should_stop": row.should_stop,
        "stopping_reasons": json.loads(row.stopping_reasons_json),
    }


def pagination_json(page: Page, items: list[dict[str, Any]]) -> dict[str, Any]:
    """A Pagination object."""
    return {"object": "pagination", "count": page.count, "data": items, "paging": page.paging}
