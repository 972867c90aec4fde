"""/v1/experiments/{id}/suggestions"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
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
    metadata_query,
    ok,
    paging,
    path_id,
    query_bool,
    query_ids,
    render,
)
from suggestion_server.services import lapsed_leases
from suggestion_server.services import suggestions as service
from suggestion_server.wire.schemas import (
    EmptyOut,
    PaginationOut,
    SuggestionCreate,
    SuggestionOut,
    SuggestionUpdate,
    validate_body,
)

router = APIRouter(prefix="/v1/experiments/{experiment_id}/suggestions", tags=["suggestions"])

State = Annotated[str | None, Query(description="only `open` is accepted")]


@router.post("", responses=ok(SuggestionOut), openapi_extra=body_schema(SuggestionCreate))
async def create_suggestion(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    body: JsonBody,
    fields: Fields = None,
) -> Response:
    """A new open suggestion (manual, queued, pooled or from the engine)."""
    spec = validate_body(SuggestionCreate, body)
    eid = path_id(experiment_id)
    # Counted from arrival, also while queued for a worker thread: the pool's demand signal.
    with ctx.pool.asking(eid):
        result = await run_in_threadpool(service.create_suggestion, ctx, client_id, eid, spec)
    return render(request, result, fields)


@router.get(
    "",
    responses=ok(PaginationOut[SuggestionOut]),
    description="Newest first. Extensions: `metadata.<key>=<value>` filters on a metadata value; "
    "`lease_expired_by=<unix s>` (with `state=open`) keeps the suggestions an optfleet agent "
    "might adopt (see suggestion_server/services/lapsed_leases.py).",
)
def list_suggestions(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    state: State = None,
    limit: Limit = None,
    before: Before = None,
    after: After = None,
    deleted: Annotated[str | None, Query(description="true: include deleted")] = None,
    id: Annotated[str | None, Query(description="comma-separated ids")] = None,
    lease_expired_by: Annotated[
        str | None, Query(description="unix seconds: only open suggestions with a lapsed lease")
    ] = None,
    fields: Fields = None,
) -> Response:
    """A page of suggestions."""
    lapsed_by = lapsed_leases.parse_lapsed_by(lease_expired_by)
    if lapsed_by is not None:
        return _lapsed_open_suggestions(
            request, ctx, client_id, experiment_id, lapsed_by, (limit, before, after), fields
        )
    result = service.list_suggestions(
        ctx,
        client_id,
        path_id(experiment_id),
        paging(limit, before, after),
        state=state,
        include_deleted=query_bool(deleted, "deleted"),
        ids=query_ids(id),
        metadata=metadata_query(request),
    )
    return render(request, result, fields)


def _lapsed_open_suggestions(
    request: Request,
    ctx: Ctx,
    client_id: int,
    experiment_id: str,
    lapsed_by: float,
    page: tuple[int | None, str | None, str | None],
    fields: str | None,
) -> Response:
    """``lease_expired_by``: the agents' orphan scan; combined only with state, paging, fields."""
    lapsed_leases.check_combination(list(request.query_params), request.query_params.get("state"))
    result = lapsed_leases.list_lapsed_open_suggestions(
        ctx, client_id, path_id(experiment_id), paging(*page), lapsed_by
    )
    response = render(request, result, fields)
    response.headers[lapsed_leases.HEADER] = "applied"
    return response


@router.delete("", responses=ok(EmptyOut))
def delete_suggestions(
    request: Request, ctx: Ctx, client_id: ClientId, experiment_id: IdPath, state: State = None
) -> Response:
    """Soft delete the open suggestions (``state=open``) or all of them."""
    service.delete_suggestions(ctx, client_id, path_id(experiment_id), state)
    return render(request, {})


@router.get("/{suggestion_id}", responses=ok(SuggestionOut))
def fetch_suggestion(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    suggestion_id: IdPath,
    fields: Fields = None,
) -> Response:
    """One suggestion (404 when deleted)."""
    result = service.fetch_suggestion(
        ctx, client_id, path_id(experiment_id), path_id(suggestion_id)
    )
    return render(request, result, fields)


@router.put(
    "/{suggestion_id}", responses=ok(SuggestionOut), openapi_extra=body_schema(SuggestionUpdate)
)
def update_suggestion(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    suggestion_id: IdPath,
    body: JsonBody,
    fields: Fields = None,
) -> Response:
    """Replace (or clear) the metadata."""
    change = validate_body(SuggestionUpdate, body)
    result = service.update_suggestion(
        ctx, client_id, path_id(experiment_id), path_id(suggestion_id), change
    )
    return render(request, result, fields)


@router.delete("/{suggestion_id}", responses=ok(EmptyOut))
def delete_suggestion(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    suggestion_id: IdPath,
) -> Response:
    """Soft delete one suggestion."""
    service.delete_suggestion(ctx, client_id, path_id(experiment_id), path_id(suggestion_id))
    return render(request, {})
