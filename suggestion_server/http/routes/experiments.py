"""/v1/experiments"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
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
from suggestion_server.services import experiments as service
from suggestion_server.wire.schemas import (
    EmptyOut,
    ExperimentCreate,
    ExperimentOut,
    ExperimentUpdate,
    PaginationOut,
    validate_body,
)

router = APIRouter(prefix="/v1/experiments", tags=["experiments"])


@router.post("", responses=ok(ExperimentOut), openapi_extra=body_schema(ExperimentCreate))
def create_experiment(
    request: Request, ctx: Ctx, client_id: ClientId, body: JsonBody, fields: Fields = None
) -> Response:
    """Create an experiment."""
    spec = validate_body(ExperimentCreate, body)
    return render(request, service.create_experiment(ctx, client_id, spec), fields)


@router.get("", responses=ok(PaginationOut[ExperimentOut]))
def list_experiments(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    limit: Limit = None,
    before: Before = None,
    after: After = None,
    state: Annotated[str | None, Query(description="active (default), deleted or all")] = None,
    fields: Fields = None,
) -> Response:
    """The token's experiments, newest first."""
    page = paging(limit, before, after)
    return render(request, service.list_experiments(ctx, client_id, page, state), fields)


@router.get("/{experiment_id}", responses=ok(ExperimentOut))
def fetch_experiment(
    request: Request, ctx: Ctx, client_id: ClientId, experiment_id: IdPath, fields: Fields = None
) -> Response:
    """One experiment, with ``progress``."""
    return render(request, service.fetch_experiment(ctx, client_id, path_id(experiment_id)), fields)


@router.put(
    "/{experiment_id}", responses=ok(ExperimentOut), openapi_extra=body_schema(ExperimentUpdate)
)
def update_experiment(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    body: JsonBody,
    fields: Fields = None,
) -> Response:
    """Partial update: name, metadata, budget, bandwidth, thresholds, bounds, categories, state."""
    change = validate_body(ExperimentUpdate, body)
    result = service.update_experiment(ctx, client_id, path_id(experiment_id), change)
    return render(request, result, fields)


@router.delete("/{experiment_id}", responses=ok(EmptyOut))
def delete_experiment(
    request: Request, ctx: Ctx, client_id: ClientId, experiment_id: IdPath
) -> Response:
    """Soft delete."""
    service.delete_experiment(ctx, client_id, path_id(experiment_id))
    return render(request, {})
