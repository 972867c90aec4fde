"""Suggestions: create (engine or manual), list, fetch, update metadata, delete."""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy import ColumnElement, update

from suggestion_server.context import ServerContext
from suggestion_server.errors import bad_request
from suggestion_server.experiment_space import (
    engine_metrics,
    linear_constraints_of,
    metric_key,
    rendered_assignments,
    search_spec,
    validated_assignments,
)
from suggestion_server.models import Suggestion
from suggestion_server.paging import PageRequest
from suggestion_server.render import pagination_json, suggestion_json
from suggestion_server.schemas import SuggestionCreate, SuggestionUpdate
from suggestion_server.services.queued_suggestions import take_queued_assignments
from suggestion_server.store import (
    SqlRowSource,
    client_suggestion,
    delete_suggestion_row,
    dumps,
    experiment_row_for_client,
    metadata_filters,
    page_of,
    set_client_suggestion_metadata,
)

log = logging.getLogger("suggestion_server.suggestions")


def check_state(state: str | None) -> None:
    """The only state filter the wire knows is ``open``."""
    if state is not None and state != "open":
        raise bad_request(f"Unrecognized state {state} (if provided, must be open)")


def _engine_assignments(
    ctx: ServerContext, session: Any, experiment: Any, suggestion_id: int
) -> dict[str, Any]:
    params = json.loads(experiment.parameters_json)
    metrics = json.loads(experiment.metrics_json)
    spec = search_spec(
        experiment.id, experiment.type, params, metrics, linear_constraints_of(experiment)
    )
    names = {metric_key(m["name"]): metric_key(m["name"]) for m in engine_metrics(metrics)}
    source = SqlRowSource(session, experiment.id, names)
    proposed = ctx.suggester.propose(
        spec, experiment.version, source, for_suggestion_id=suggestion_id
    )
    missing = {p["name"] for p in params} - set(proposed)
    if missing:
        raise RuntimeError(f"engine proposed no value for {sorted(missing)}")
    return rendered_assignments({p["name"]: proposed[p["name"]] for p in params}, params)


def create_suggestion(
    ctx: ServerContext, client_id: int, experiment_id: int, body: SuggestionCreate
) -> dict[str, Any]:
    """A new open suggestion: exactly ``assignments`` (manual), else the oldest queued
    suggestion's, else the engine's."""
    with ctx.store.write() as session:
        experiment = experiment_row_for_client(session, client_id, experiment_id, lock=True)
        if experiment.state == "deleted":
            raise bad_request(f"Cannot create suggestions for deleted experiment {experiment_id}")
        params = json.loads(experiment.parameters_json)
        queued = None
        if body.assignments is None:
            queued = take_queued_assignments(session, experiment.id, params)
        manual = queued
        if body.assignments is not None:
            manual = validated_assignments(body.assignments, params)
        suggestion = Suggestion(
            experiment_id=experiment.id,
            assignments_json=dumps(manual or {}),
            metadata_json=dumps(body.metadata),
            created=ctx.now(),
            closed=False,
            deleted=False,
        )
        session.add(suggestion)
        session.flush()
        if manual is None:
            assignments = _engine_assignments(ctx, session, experiment, suggestion.id)
            suggestion.assignments_json = dumps(assignments) or "{}"
            session.flush()
        log.info(
            "suggestion created experiment=%s suggestion=%s manual=%s queued=%s instance_id=%s",
            experiment.id,
            suggestion.id,
            body.assignments is not None,
            queued is not None,
            (body.metadata or {}).get("instance_id"),
        )
        return suggestion_json(suggestion, just_created=True)


def fetch_suggestion(
    ctx: ServerContext, client_id: int, experiment_id: int, suggestion_id: int
) -> dict[str, Any]:
    """One non-deleted suggestion."""
    with ctx.store.read() as session:
        return suggestion_json(client_suggestion(session, client_id, experiment_id, suggestion_id))


def update_suggestion(
    ctx: ServerContext,
    client_id: int,
    experiment_id: int,
    suggestion_id: int,
    body: SuggestionUpdate,
) -> dict[str, Any]:
    """Only ``metadata``: absent → unchanged, null → cleared, object → replaces the map."""
    if "metadata" not in body.model_fields_set:
        return fetch_suggestion(ctx, client_id, experiment_id, suggestion_id)
    metadata_json = dumps(body.metadata)
    with ctx.store.write_statement() as connection:
        row = set_client_suggestion_metadata(
            connection, client_id, experiment_id, suggestion_id, metadata_json
        )
    return suggestion_json(row)


def delete_suggestion(
    ctx: ServerContext, client_id: int, experiment_id: int, suggestion_id: int
) -> None:
    """Soft delete of one suggestion."""
    with ctx.store.write() as session:
        client_suggestion(session, client_id, experiment_id, suggestion_id)
        delete_suggestion_row(session, suggestion_id)


def delete_suggestions(
    ctx: ServerContext, client_id: int, experiment_id: int, state: str | None
) -> None:
    """Soft delete of the open suggestions (``state=open``) or of all of them."""
    check_state(state)
    with ctx.store.write() as session:
        experiment_row_for_client(session, client_id, experiment_id)
        conditions = [Suggestion.experiment_id == experiment_id, Suggestion.deleted.is_(False)]
        if state == "open":
            conditions.append(Suggestion.closed.is_(False))
        session.execute(update(Suggestion).where(*conditions).values(deleted=True))


def list_suggestions(
    ctx: ServerContext,
    client_id: int,
    experiment_id: int,
    req: PageRequest,
    *,
    state: str | None,
    include_deleted: bool,
    ids: list[int] | None,
    metadata: list[tuple[str, str]],
) -> dict[str, Any]:
    """A page of the experiment's suggestions, newest first."""
    check_state(state)
    with ctx.store.read() as session:
        experiment_row_for_client(session, client_id, experiment_id)
        conditions: list[ColumnElement[bool]] = [Suggestion.experiment_id == experiment_id]
        if not include_deleted:
            conditions.append(Suggestion.deleted.is_(False))
        if state == "open":
            conditions.append(Suggestion.closed.is_(False))
        if ids is not None:
            conditions.append(Suggestion.id.in_(ids))
        conditions.extend(metadata_filters(session, Suggestion, metadata))
        page = page_of(session, Suggestion, conditions, req)
        return pagination_json(page, [suggestion_json(s) for s in page.rows])
