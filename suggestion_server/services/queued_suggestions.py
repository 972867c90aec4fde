"""Queued suggestions: assignments a user wants evaluated next, served oldest first by the
following suggestion creates instead of the engine (§1 #21)."""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from suggestion_server.domain.conditionals import conditionals_of
from suggestion_server.domain.experiment_space import validated_assignments
from suggestion_server.services.context import ServerContext
from suggestion_server.services.render import pagination_json, queued_suggestion_json
from suggestion_server.storage.models import QueuedSuggestion
from suggestion_server.storage.queries import dumps, experiment_row_for_client, page_of
from suggestion_server.wire.errors import ApiError, bad_request, not_found
from suggestion_server.wire.paging import PageRequest
from suggestion_server.wire.schemas import MAX_ID, QueuedSuggestionCreate

log = logging.getLogger("suggestion_server.queued_suggestions")


def create_queued_suggestion(
    ctx: ServerContext, client_id: int, experiment_id: int, body: QueuedSuggestionCreate
) -> dict[str, Any]:
    """Queue ``assignments`` (checked against the parameters now, and again when served)."""
    with ctx.store.write() as session:
        experiment = experiment_row_for_client(session, client_id, experiment_id)
        if experiment.state == "deleted":
            raise bad_request(f"Cannot queue suggestions for deleted experiment {experiment_id}")
        params = json.loads(experiment.parameters_json)
        queued = QueuedSuggestion(
            experiment_id=experiment.id,
            assignments_json=dumps(
                validated_assignments(body.assignments, params, conditionals_of(experiment))
            )
            or "{}",
            created=ctx.now(),
        )
        session.add(queued)
        session.flush()
        log.info("suggestion queued experiment=%s queued=%s", experiment.id, queued.id)
        return queued_suggestion_json(queued)


def list_queued_suggestions(
    ctx: ServerContext, client_id: int, experiment_id: int, req: PageRequest
) -> dict[str, Any]:
    """A page of the experiment's queued suggestions, newest first."""
    with ctx.store.read() as session:
        experiment_row_for_client(session, client_id, experiment_id)
        page = page_of(
            session, QueuedSuggestion, [QueuedSuggestion.experiment_id == experiment_id], req
        )
        return pagination_json(page, [queued_suggestion_json(q) for q in page.rows])


def _queued(session: Session, experiment_id: int, queued_id: int) -> QueuedSuggestion:
    row = session.get(QueuedSuggestion, queued_id) if 0 < queued_id <= MAX_ID else None
    if row is None or row.experiment_id != experiment_id:
        raise not_found()
    return row


def fetch_queued_suggestion(
    ctx: ServerContext, client_id: int, experiment_id: int, queued_id: int
) -> dict[str, Any]:
    """One queued suggestion (404 once served or deleted)."""
    with ctx.store.read() as session:
        experiment_row_for_client(session, client_id, experiment_id)
        return queued_suggestion_json(_queued(session, experiment_id, queued_id))


def delete_queued_suggestions(
    ctx: ServerContext, client_id: int, experiment_id: int, queued_id: int | None
) -> None:
    """Remove one queued suggestion, or (``queued_id`` None) all of the experiment's. Under the
    experiment's lock, as suggestion creation takes them: a removed one is never served."""
    with ctx.store.write() as session:
        experiment_row_for_client(session, client_id, experiment_id, lock=True)
        if queued_id is None:
            session.execute(
                delete(QueuedSuggestion).where(QueuedSuggestion.experiment_id == experiment_id)
            )
        else:
            session.delete(_queued(session, experiment_id, queued_id))


def take_queued_assignments(
    session: Session,
    experiment_id: int,
    params: list[dict[str, Any]],
    conditionals: list[dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """Remove and return the oldest queued assignments that still fit the parameters (bounds
    may have changed since they were queued; those that no longer fit are dropped and
    logged), or None. The caller holds the experiment's lock."""
    while True:
        oldest = session.scalars(
            select(QueuedSuggestion)
            .where(QueuedSuggestion.experiment_id == experiment_id)
            .order_by(QueuedSuggestion.id)
            .limit(1)
        ).first()
        if oldest is None:
            return None
        session.delete(oldest)
        session.flush()  # the session does not autoflush: the next SELECT must not see it
        try:
            return validated_assignments(json.loads(oldest.assignments_json), params, conditionals)
        except ApiError as exc:
            log.warning(
                "queued suggestion dropped experiment=%s queued=%s reason=%s",
                experiment_id,
                oldest.id,
                exc.message,
            )
