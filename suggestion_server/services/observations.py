"""Observations: create (with duplicate handling), list, fetch, update, delete."""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm import Session

from suggestion_server.domain.conditionals import conditionals_of
from suggestion_server.domain.experiment_space import optimized_metrics, validated_assignments
from suggestion_server.domain.metric_values import values_in_metric_order
from suggestion_server.services.context import ServerContext
from suggestion_server.services.render import observation_json, pagination_json
from suggestion_server.storage.models import Experiment, Observation, Suggestion
from suggestion_server.storage.queries import (
    bump_version,
    close_suggestion,
    dumps,
    experiment_for_client,
    experiment_row_for_client,
    insert_observation,
    metadata_filters,
    observation_in,
    page_of,
    suggestion_and_its_observation,
    suggestion_in,
)
from suggestion_server.storage.training_runs import close_run, run_values_json
from suggestion_server.wire.errors import ApiError, bad_request, not_found
from suggestion_server.wire.jsonbody import short_json
from suggestion_server.wire.paging import PageRequest
from suggestion_server.wire.schemas import (
    ObservationBatchCreate,
    ObservationCreate,
    ObservationUpdate,
    ValueIn,
)

log = logging.getLogger("suggestion_server.observations")

SORTS = ("id", "timestamp")


def _stored_values(
    metrics: list[dict[str, Any]],
    values: list[ValueIn] | None,
    value: float | None,
    value_stddev: float | None,
) -> list[dict[str, Any]]:
    """The ``values`` list to store, one entry per given metric in the experiment's order."""
    if value is not None and values is not None:
        raise bad_request("Provide either `value` or `values`, not both")
    if value is None and value_stddev is not None and values is None:
        raise bad_request("`value_stddev` needs a `value`")
    if value is not None:
        if len(metrics) != 1:
            raise bad_request(
                "`value` is only accepted for experiments with a single metric; send `values` "
                "with one entry per metric"
            )
        values = [ValueIn(name=metrics[0]["name"], value=value, value_stddev=value_stddev)]
    if values is None:
        raise bad_request('Missing required json key "values"')
    stored = values_in_metric_order(metrics, values)
    named = {v["name"] for v in stored}
    for metric in metrics:
        if metric["strategy"] != "store" and metric["name"] not in named:
            raise bad_request(f"Missing a value for metric {short_json(metric['name'])} in values")
    return stored


def _objective_value(metrics: list[dict[str, Any]], stored: list[dict[str, Any]]) -> float | None:
    opt = optimized_metrics(metrics)
    if len(opt) != 1:
        return None
    return next((float(v["value"]) for v in stored if v["name"] == opt[0]["name"]), None)


def _outcome(
    metrics: list[dict[str, Any]], body: ObservationCreate, failed: bool
) -> list[dict[str, Any]]:
    has_values = bool(body.values) or body.value is not None
    if failed:
        if has_values:
            raise bad_request("Cannot provide `values` if observation has failed")
        return []
    if not has_values:
        given = short_json(body.model_dump(exclude_unset=True))
        raise bad_request(
            f'Missing required json key "value" in: {given} (send `values`, `value`, or '
            "`failed: true`)"
        )
    return _stored_values(metrics, body.values, body.value, body.value_stddev)


def _suggestion_for(session: Session, experiment_id: int, suggestion_id: int) -> Suggestion:
    suggestion = suggestion_in(session, experiment_id, suggestion_id)
    if suggestion is None:
        raise bad_request(f"No suggestion: {suggestion_id} for experiment: {experiment_id}")
    return suggestion


def create_observation(
    ctx: ServerContext, client_id: int, experiment_id: int, body: ObservationCreate
) -> dict[str, Any]:
    """Store an observation. A second one for a suggestion that already has a live observation:
    an identical retry returns the existing one, a different one is a 409."""
    with ctx.store.write() as session:
        experiment = experiment_row_for_client(session, client_id, experiment_id, lock=True)
        result, observation = _create_in(ctx, session, experiment, body)
        if observation is not None:
            log.info(
                "observation created experiment=%s observation=%s suggestion=%s failed=%s",
                experiment.id,
                observation.id,
                body.suggestion,
                observation.failed,
            )
        return result


class _DryRun(Exception):
    """Carries a dry run's result out of its transaction, which is then rolled back."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__("dry run")
        self.result = result


def create_observations(
    ctx: ServerContext, client_id: int, experiment_id: int, batch: ObservationBatchCreate
) -> dict[str, Any]:
    """Store a batch in one transaction: all of them, or none with the first error naming its
    index. Each follows ``create_observation``'s rules, also against earlier ones of the batch.
    ``dry_run`` checks everything and writes nothing (the ids are then null)."""
    try:
        with ctx.store.write() as session:
            experiment = experiment_row_for_client(session, client_id, experiment_id, lock=True)
            results = []
            for index, body in enumerate(batch.observations):
                try:
                    results.append(_create_in(ctx, session, experiment, body)[0])
                except ApiError as exc:
                    message = f"observations[{index}]: {exc.message}"
                    raise ApiError(exc.status, message, **exc.extra) from None
            page = {
                "object": "pagination",
                "count": len(results),
                "data": results,
                "paging": {"before": None, "after": None},
            }
            if batch.dry_run:
                raise _DryRun(page)
    except _DryRun as dry:
        for item in dry.result["data"]:
            item["id"] = None
        return dry.result
    log.info(
        "observations created experiment=%s count=%s ids=%s..%s",
        experiment_id,
        len(results),
        results[0]["id"],
        results[-1]["id"],
    )
    return page


def create_run_observation(
    ctx: ServerContext, session: Session, experiment: Any, body: ObservationCreate
) -> int:
    """The id of the observation that ends an AI-experiment run (services/run_endings.py),
    created inside the caller's transaction, which holds the experiment's lock; the caller
    records it on the run (its state and values stay the run's)."""
    result, observation = _create_in(ctx, session, experiment, body, for_run=True)
    if observation is not None:
        log.info(
            "observation created experiment=%s observation=%s suggestion=%s failed=%s run=true",
            experiment.id,
            observation.id,
            body.suggestion,
            observation.failed,
        )
    return int(result["id"])


def _create_in(
    ctx: ServerContext,
    session: Session,
    experiment: Any,
    body: ObservationCreate,
    *,
    for_run: bool = False,
) -> tuple[dict[str, Any], Observation | None]:
    """(response, the new row or None for an identical retry) inside the caller's transaction,
    which holds the experiment's lock. ``for_run``: made from an AI-experiment run, which the
    caller updates itself."""
    experiment_id = experiment.id
    if experiment.runs_only and not for_run:
        raise ApiError(
            403,
            f"Experiment {experiment_id} is an AI experiment: its observations come from runs, "
            f"please create runs instead (POST /v1/aiexperiments/{experiment_id}/training_runs)",
        )
    if (body.suggestion is None) == (body.assignments is None):
        raise bad_request(
            "Must provide exactly one of `suggestion`, `assignments` in: "
            f"{short_json(body.model_dump(exclude_unset=True))}"
        )
    if experiment.state == "deleted":
        raise bad_request(f"Cannot create observations for deleted experiment {experiment_id}")
    metrics = json.loads(experiment.metrics_json)
    values = _outcome(metrics, body, bool(body.failed))
    metadata_json = dumps(body.metadata)
    values_json = dumps(values) or "[]"
    close = False
    run_id = None
    if body.suggestion is not None:
        found = suggestion_and_its_observation(session, experiment_id, body.suggestion)
        if found is None:
            raise bad_request(f"No suggestion: {body.suggestion} for experiment: {experiment_id}")
        existing = (
            None
            if found.observation_id is None
            else observation_in(session, experiment_id, found.observation_id)
        )
        if existing is not None:
            return _existing_or_conflict(
                existing, bool(body.failed), values_json, metadata_json
            ), None
        assignments_json = found.assignments_json
        close = not found.closed
        run_id = found.training_run_id
    else:
        params = json.loads(experiment.parameters_json)
        checked = validated_assignments(body.assignments or {}, params, conditionals_of(experiment))
        assignments_json = dumps(checked) or "{}"
    now = ctx.now()
    row = {
        "experiment_id": experiment_id,
        "suggestion_id": body.suggestion,
        "assignments_json": assignments_json,
        "values_json": values_json,
        "objective_value": _objective_value(metrics, values),
        "failed": bool(body.failed),
        "metadata_json": metadata_json,
        "created": now,
        "updated": now,
        "deleted": False,
    }
    # Plain INSERT/UPDATE statements: the ORM unit of work costs more CPU than the SQL.
    observation = Observation(id=insert_observation(session, row), **row)
    if close and body.suggestion is not None:
        close_suggestion(session, body.suggestion)
    if run_id is not None and not for_run:
        close_run(session, run_id, observation.id, observation.failed, run_values_json(values), now)
    return observation_json(observation), observation


def _existing_or_conflict(
    existing: Observation, failed: bool, values_json: str, metadata_json: str | None
) -> dict[str, Any]:
    same = (
        existing.failed == failed
        and json.loads(existing.values_json) == json.loads(values_json)
        and existing.metadata_json == metadata_json
    )
    if same:
        return observation_json(existing)
    raise ApiError(
        409,
        f"Suggestion {existing.suggestion_id} already has observation {existing.id} with "
        "different values, failed flag or metadata. Update that observation (PUT .../observations/"
        f"{existing.id}) or delete it before reporting another one.",
    )


def _observation_or_404(session: Session, experiment_id: int, observation_id: int) -> Observation:
    observation = observation_in(session, experiment_id, observation_id)
    if observation is None:
        raise not_found()
    return observation


def fetch_observation(
    ctx: ServerContext, client_id: int, experiment_id: int, observation_id: int
) -> dict[str, Any]:
    """One non-deleted observation."""
    with ctx.store.read() as session:
        experiment_row_for_client(session, client_id, experiment_id)
        return observation_json(_observation_or_404(session, experiment_id, observation_id))


def _apply_update(
    session: Session, experiment: Experiment, row: Observation, body: ObservationUpdate, now: int
) -> bool:
    """Apply ``body`` to ``row``; True when something the engine reads changed."""
    fields = body.model_fields_set
    engine_visible = False
    moved_onto_run = None
    if body.suggestion is not None and body.assignments is not None:
        raise bad_request("Provide at most one of `suggestion`, `assignments`")
    if body.suggestion is not None and body.suggestion != row.suggestion_id:
        suggestion = _suggestion_for(session, experiment.id, body.suggestion)
        found = suggestion_and_its_observation(session, experiment.id, suggestion.id)
        if found is not None and found.observation_id is not None:
            raise ApiError(
                409,
                f"Suggestion {suggestion.id} already has observation {found.observation_id}; "
                "an observation cannot be moved onto it",
            )
        row.suggestion_id = suggestion.id
        row.assignments_json = suggestion.assignments_json
        close_suggestion(session, suggestion.id)
        moved_onto_run = None if found is None else found.training_run_id
        engine_visible = True
    elif body.assignments is not None:
        params = json.loads(experiment.parameters_json)
        checked = validated_assignments(body.assignments, params, conditionals_of(experiment))
        row.assignments_json = dumps(checked) or "{}"
        row.suggestion_id = None
        engine_visible = True
    outcome_fields = {"values", "value", "value_stddev", "failed"} & fields
    if outcome_fields:
        metrics = json.loads(experiment.metrics_json)
        if body.failed is not None:
            failed = body.failed
        elif body.values or body.value is not None:
            failed = False
        else:
            failed = row.failed
        if not failed and not (body.values or body.value is not None) and not row.failed:
            values = json.loads(row.values_json)  # unchanged values, only the flag was sent
        else:
            values = _outcome(metrics, body, failed)
        row.failed = failed
        row.values_json = dumps(values) or "[]"
        row.objective_value = _objective_value(metrics, values)
        engine_visible = True
    if "metadata" in fields:
        row.metadata_json = dumps(body.metadata)
    if moved_onto_run is not None:
        # Moved onto a suggestion with a training run: the observation ends that run.
        values = json.loads(row.values_json)
        close_run(session, moved_onto_run, row.id, row.failed, run_values_json(values), now)
    return engine_visible


def update_observation(
    ctx: ServerContext,
    client_id: int,
    experiment_id: int,
    observation_id: int,
    body: ObservationUpdate,
) -> dict[str, Any]:
    """Change values, failed, metadata or what the observation refers to."""
    with ctx.store.write() as session:
        experiment = experiment_for_client(session, client_id, experiment_id, lock=True)
        row = _observation_or_404(session, experiment_id, observation_id)
        now = ctx.now()
        if _apply_update(session, experiment, row, body, now):
            bump_version(session, experiment)
        row.updated = now
        session.flush()
        return observation_json(row)


def delete_observation(
    ctx: ServerContext, client_id: int, experiment_id: int, observation_id: int
) -> None:
    """Soft delete (the suggestion stays closed)."""
    with ctx.store.write() as session:
        experiment = experiment_for_client(session, client_id, experiment_id, lock=True)
        _observation_or_404(session, experiment_id, observation_id).deleted = True
        bump_version(session, experiment)


def delete_observations(ctx: ServerContext, client_id: int, experiment_id: int) -> None:
    """Soft delete of every observation of the experiment."""
    with ctx.store.write() as session:
        experiment = experiment_for_client(session, client_id, experiment_id, lock=True)
        session.execute(
            update(Observation)
            .where(Observation.experiment_id == experiment_id, Observation.deleted.is_(False))
            .values(deleted=True)
        )
        bump_version(session, experiment)


def list_observations(
    ctx: ServerContext,
    client_id: int,
    experiment_id: int,
    req: PageRequest,
    *,
    include_deleted: bool,
    sort: str | None,
    ascending: bool,
    metadata: list[tuple[str, str]],
) -> dict[str, Any]:
    """A page of the experiment's observations, newest first."""
    if sort is not None and sort not in SORTS:
        raise bad_request(f"Unsupported sort {sort!r}: this server sorts by {' or '.join(SORTS)}")
    if ascending:
        raise bad_request("ascending=true is not supported: observations are listed newest first")
    with ctx.store.read() as session:
        experiment_row_for_client(session, client_id, experiment_id)
        conditions: list[ColumnElement[bool]] = [Observation.experiment_id == experiment_id]
        if not include_deleted:
            conditions.append(Observation.deleted.is_(False))
        conditions.extend(metadata_filters(session, Observation, metadata))
        page = page_of(session, Observation, conditions, req)
        return pagination_json(page, [observation_json(o) for o in page.rows])
