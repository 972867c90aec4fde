"""/v1/experiments/{id}/training_runs (/v1/training_runs/{id} is in routes/runs.py)"""

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
    query_bool,
    render,
)
from suggestion_server.services import training_runs as service
from suggestion_server.wire.schemas import EmptyOut, PaginationOut, validate_body
from suggestion_server.wire.training_runs import (
    TrainingRunCreate,
    TrainingRunOut,
    TrainingRunUpdate,
)

router = APIRouter(tags=["training runs"])
EXPERIMENT_RUNS = "/v1/experiments/{experiment_id}/training_runs"


@router.post(
    EXPERIMENT_RUNS, responses=ok(TrainingRunOut), openapi_extra=body_schema(TrainingRunCreate)
)
def create_training_run(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    body: JsonBody,
    fields: Fields = None,
) -> Response:
    """The training run of an open suggestion; a second create for the same suggestion returns
    the same run."""
    spec = validate_body(TrainingRunCreate, body)
    result = service.create_training_run(ctx, client_id, path_id(experiment_id), spec)
    return render(request, result, fields)


@router.get(EXPERIMENT_RUNS, responses=ok(PaginationOut[TrainingRunOut]))
def list_training_runs(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    limit: Limit = None,
    before: Before = None,
    after: After = None,
    deleted: Annotated[str | None, Query(description="true: include deleted")] = None,
    fields: Fields = None,
) -> Response:
    """The experiment's runs, newest first."""
    result = service.list_training_runs(
        ctx,
        client_id,
        path_id(experiment_id),
        paging(limit, before, after),
        include_deleted=query_bool(deleted, "deleted"),
    )
    return render(request, result, fields)


@router.get(EXPERIMENT_RUNS + "/{run_id}", responses=ok(TrainingRunOut))
def fetch_experiment_training_run(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    run_id: IdPath,
    fields: Fields = None,
) -> Response:
    """One run of the experiment."""
    result = service.fetch_training_run(ctx, client_id, path_id(run_id), path_id(experiment_id))
    return render(request, result, fields)


@router.put(
    EXPERIMENT_RUNS + "/{run_id}",
    responses=ok(TrainingRunOut),
    openapi_extra=body_schema(TrainingRunUpdate),
)
def update_training_run(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    run_id: IdPath,
    body: JsonBody,
    fields: Fields = None,
) -> Response:
    """``name``, ``metadata``, ``state`` (completed or failed)."""
    change = validate_body(TrainingRunUpdate, body)
    result = service.update_training_run(
        ctx, client_id, path_id(experiment_id), path_id(run_id), change
    )
    return render(request, result, fields)


@router.delete(EXPERIMENT_RUNS + "/{run_id}", responses=ok(EmptyOut))
def delete_training_run(
    request: Request, ctx: Ctx, client_id: ClientId, experiment_id: IdPath, run_id: IdPath
) -> Response:
    """Soft delete."""
    service.delete_training_run(ctx, client_id, path_id(experiment_id), path_id(run_id))
    return render(request, {})
