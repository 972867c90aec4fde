"""/v1/experiments/{id}/queued_suggestions"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from suggestion_server.http.routes.common import (
    After,
    Before,
    ClientId,
    Ctx,
    Fields,
    IdPath,
    JsonBody,
    Limit,
    body_schema,
    ok,
    paging,
    path_id,
    render,
)
from suggestion_server.services import queued_suggestions as service
from suggestion_server.wire.schemas import (
    EmptyOut,
    PaginationOut,
    QueuedSuggestionCreate,
    QueuedSuggestionOut,
    validate_body,
)

router = APIRouter(
    prefix="/v1/experiments/{experiment_id}/queued_suggestions", tags=["queued_suggestions"]
)


@router.post(
    "", responses=ok(QueuedSuggestionOut), openapi_extra=body_schema(QueuedSuggestionCreate)
)
def create_queued_suggestion(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    body: JsonBody,
    fields: Fields = None,
) -> Response:
    """Queue assignments: the next suggestion created takes the oldest queued ones."""
    spec = validate_body(QueuedSuggestionCreate, body)
    result = service.create_queued_suggestion(ctx, client_id, path_id(experiment_id), spec)
    return render(request, result, fields)


@router.get("", responses=ok(PaginationOut[QueuedSuggestionOut]))
def list_queued_suggestions(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    limit: Limit = None,
    before: Before = None,
    after: After = None,
    fields: Fields = None,
) -> Response:
    """The suggestions still queued, newest first."""
    result = service.list_queued_suggestions(
        ctx, client_id, path_id(experiment_id), paging(limit, before, after)
    )
    return render(request, result, fields)


@router.delete("", responses=ok(EmptyOut))
def delete_queued_suggestions(
    request: Request, ctx: Ctx, client_id: ClientId, experiment_id: IdPath
) -> Response:
    """Remove every queued suggestion of the experiment."""
    service.delete_queued_suggestions(ctx, client_id, path_id(experiment_id), None)
    return render(request, {})


@router.get("/{queued_id}", responses=ok(QueuedSuggestionOut))
def fetch_queued_suggestion(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    queued_id: IdPath,
    fields: Fields = None,
) -> Response:
    """One queued suggestion (404 once it has been served or removed)."""
    result = service.fetch_queued_suggestion(
        ctx, client_id, path_id(experiment_id), path_id(queued_id)
    )
    return render(request, result, fields)


@router.delete("/{queued_id}", responses=ok(EmptyOut))
def delete_queued_suggestion(
    request: Request, ctx: Ctx, client_id: ClientId, experiment_id: IdPath, queued_id: IdPath
) -> Response:
    """Remove one queued suggestion."""
    service.delete_queued_suggestions(ctx, client_id, path_id(experiment_id), path_id(queued_id))
    return render(request, {})
