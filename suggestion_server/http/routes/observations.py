"""/v1/experiments/{id}/observations"""

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
    metadata_query,
    ok,
    paging,
    path_id,
    query_bool,
    render,
)
from suggestion_server.services import observations as service
from suggestion_server.wire.schemas import (
    EmptyOut,
    ObservationBatchCreate,
    ObservationCreate,
    ObservationOut,
    ObservationUpdate,
    PaginationOut,
    validate_body,
)

router = APIRouter(prefix="/v1/experiments/{experiment_id}/observations", tags=["observations"])


@router.post("", responses=ok(ObservationOut), openapi_extra=body_schema(ObservationCreate))
def create_observation(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    body: JsonBody,
    fields: Fields = None,
) -> Response:
    """Report an evaluation (``suggestion`` xor ``assignments``; ``values``/``value`` or
    ``failed``). An identical retry returns the existing observation; a different one is 409."""
    spec = validate_body(ObservationCreate, body)
    result = service.create_observation(ctx, client_id, path_id(experiment_id), spec)
    return render(request, result, fields)


@router.post(
    "/batch",
    responses=ok(PaginationOut[ObservationOut]),
    openapi_extra=body_schema(ObservationBatchCreate),
)
def create_observations(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    body: JsonBody,
    fields: Fields = None,
) -> Response:
    """Report up to 2,500 evaluations at once, each as in a single create: all are stored or,
    on the first error (which names the index), none. ``dry_run``: check only (ids null)."""
    batch = validate_body(ObservationBatchCreate, body)
    result = service.create_observations(ctx, client_id, path_id(experiment_id), batch)
    return render(request, result, fields)


@router.get(
    "",
    responses=ok(PaginationOut[ObservationOut]),
    description="Newest first. Extension: `metadata.<key>=<value>` filters on a metadata value.",
)
def list_observations(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    limit: Limit = None,
    before: Before = None,
    after: After = None,
    deleted: Annotated[str | None, Query(description="true: include deleted")] = None,
    sort: Annotated[str | None, Query(description="id (default) or timestamp")] = None,
    ascending: Annotated[str | None, Query(description="only false is supported")] = None,
    fields: Fields = None,
) -> Response:
    """A page of observations."""
    result = service.list_observations(
        ctx,
        client_id,
        path_id(experiment_id),
        paging(limit, before, after),
        include_deleted=query_bool(deleted, "deleted"),
        sort=sort,
        ascending=query_bool(ascending, "ascending"),
        metadata=metadata_query(request),
    )
    return render(request, result, fields)


@router.delete("", responses=ok(EmptyOut))
def delete_observations(
    request: Request, ctx: Ctx, client_id: ClientId, experiment_id: IdPath
) -> Response:
    """Soft delete every observation of the experiment."""
    service.delete_observations(ctx, client_id, path_id(experiment_id))
    return render(request, {})


@router.get("/{observation_id}", responses=ok(ObservationOut))
def fetch_observation(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    observation_id: IdPath,
    fields: Fields = None,
) -> Response:
    """One observation."""
    result = service.fetch_observation(
        ctx, client_id, path_id(experiment_id), path_id(observation_id)
    )
    return render(request, result, fields)


@router.put(
    "/{observation_id}", responses=ok(ObservationOut), openapi_extra=body_schema(ObservationUpdate)
)
def update_observation(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    observation_id: IdPath,
    body: JsonBody,
    fields: Fields = None,
) -> Response:
    """Change values, failed, metadata, suggestion or assignments."""
    change = validate_body(ObservationUpdate, body)
    result = service.update_observation(
        ctx, client_id, path_id(experiment_id), path_id(observation_id), change
    )
    return render(request, result, fields)


@router.delete("/{observation_id}", responses=ok(EmptyOut))
def delete_observation(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    observation_id: IdPath,
    no_optimize: Annotated[str | None, Query(description="accepted and ignored")] = None,
) -> Response:
    """Soft delete one observation."""
    query_bool(no_optimize, "no_optimize")
    service.delete_observation(ctx, client_id, path_id(experiment_id), path_id(observation_id))
    return render(request, {})
