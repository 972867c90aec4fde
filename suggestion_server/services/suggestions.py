"""Suggestions: create (engine or manual), list, fetch, update metadata, delete."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm import Session

from suggestion_server.domain.conditionals import conditionals_of
from suggestion_server.domain.experiment_space import validated_assignments
from suggestion_server.services.context import ServerContext
from suggestion_server.services.queued_suggestions import take_queued_assignments
from suggestion_server.services.render import pagination_json, suggestion_json
from suggestion_server.storage.models import Suggestion
from suggestion_server.storage.queries import (
    client_suggestion,
    delete_suggestion_row,
    dumps,
    experiment_row_for_client,
    metadata_filters,
    page_of,
    set_client_suggestion_metadata,
)
from suggestion_server.wire.errors import ApiError, bad_request
from suggestion_server.wire.paging import PageRequest
from suggestion_server.wire.schemas import SuggestionCreate, SuggestionUpdate

log = logging.getLogger("suggestion_server.suggestions")

# What an AI-experiment run adds inside the suggestion's own transaction (its run row): called
# with the new suggestion, it returns the response instead of the suggestion's.
OnInsert = Callable[[Session, Suggestion], dict[str, Any]]


def check_state(state: str | None) -> None:
    """The only state filter the wire knows is ``open``."""
    if state is not None and state != "open":
        raise bad_request(f"Unrecognized state {state} (if provided, must be open)")


def _check_active(experiment: Any, for_run: bool) -> None:
    if experiment.state == "deleted":
        raise bad_request(f"Cannot create suggestions for deleted experiment {experiment.id}")
    if experiment.runs_only and not for_run:
        raise ApiError(
            403,
            f"Experiment {experiment.id} is an AI experiment: its suggestions come with runs, "
            f"please create runs instead (POST /v1/aiexperiments/{experiment.id}/training_runs)",
        )


def _inserted(
    ctx: ServerContext,
    session: Session,
    experiment_id: int,
    assignments_json: str,
    metadata: dict[str, Any] | None,
    source: str,
    on_insert: OnInsert | None = None,
) -> dict[str, Any]:
    """Insert the new open suggestion (created now, with the request's metadata)."""
    suggestion = Suggestion(
        experiment_id=experiment_id,
        assignments_json=assignments_json,
        metadata_json=dumps(metadata),
        created=ctx.now(),
        closed=False,
        deleted=False,
    )
    session.add(suggestion)
    session.flush()
    log.info(
        "suggestion created experiment=%s suggestion=%s source=%s instance_id=%s",
        experiment_id,
        suggestion.id,
        source,
        (metadata or {}).get("instance_id"),
    )
    if on_insert is not None:
        return on_insert(session, suggestion)
    return suggestion_json(suggestion, just_created=True)


def _without_engine(
    ctx: ServerContext,
    client_id: int,
    experiment_id: int,
    body: SuggestionCreate,
    on_insert: OnInsert | None,
) -> dict[str, Any] | None:
    """One short write: the manual, queued or pooled suggestion, or None (the engine's turn)."""
    with ctx.store.write() as session:
        experiment = experiment_row_for_client(session, client_id, experiment_id, with_queue=True)
        _check_active(experiment, for_run=on_insert is not None)
        params = json.loads(experiment.parameters_json)
        if body.assignments is not None:
            manual = (
                dumps(validated_assignments(body.assignments, params, conditionals_of(experiment)))
                or "{}"
            )
            return _inserted(
                ctx, session, experiment.id, manual, body.metadata, "manual", on_insert
            )
        if experiment.has_queued_suggestions:
            # Takers of the queue are serialized by the experiment's row lock (as its deletes).
            experiment_row_for_client(session, client_id, experiment_id, lock=True)
            queued = take_queued_assignments(
                session, experiment.id, params, conditionals_of(experiment)
            )
            if queued is not None:
                queued_json = dumps(queued) or "{}"
                return _inserted(
                    ctx, session, experiment.id, queued_json, body.metadata, "queued", on_insert
                )
        taken = ctx.pool.take(session, experiment)
        if taken is None:
            return None
        result = _inserted(
            ctx,
            session,
            experiment.id,
            taken.assignments_json,
            body.metadata,
            taken.source,
            on_insert,
        )
    ctx.pool.after_take(experiment_id)
    return result


def create_suggestion(
    ctx: ServerContext,
    client_id: int,
    experiment_id: int,
    body: SuggestionCreate,
    on_insert: OnInsert | None = None,
) -> dict[str, Any]:
    """A new open suggestion: exactly ``assignments`` (manual), else the oldest queued
    suggestion's, else a pooled one, else the engine's (docs/api.md, "The suggestion pool").
    No lock is held while the engine computes but the experiment's engine lock.

    ``on_insert`` (AI-experiment runs only; an AI experiment refuses plain suggestions with a
    403) runs inside the suggestion's transaction and its result is returned instead."""
    made = _without_engine(ctx, client_id, experiment_id, body, on_insert)
    if made is not None:
        return made

    def from_pool() -> dict[str, Any] | None:
        return _without_engine(ctx, client_id, experiment_id, body, on_insert)

    def insert_own(session: Session, assignments: dict[str, Any]) -> dict[str, Any]:
        return _inserted(
            ctx,
            session,
            experiment_id,
            dumps(assignments) or "{}",
            body.metadata,
            "engine",
            on_insert,
        )

    result: dict[str, Any] = ctx.pool.assignments_from_engine(experiment_id, from_pool, insert_own)
    return result


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
