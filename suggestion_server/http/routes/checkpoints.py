"""Checkpoints, under /v1/experiments/{id}/training_runs/{id} (SigOpt's Core training monitor)
and under /v1/training_runs/{id} (the open-source server's path): one store for both."""

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
from suggestion_server.services import checkpoints as service
from suggestion_server.wire.schemas import PaginationOut, validate_body
from suggestion_server.wire.training_runs import CheckpointCreate, CheckpointOut

router = APIRouter(tags=["checkpoints"])
IN_EXPERIMENT = "/v1/experiments/{experiment_id}/training_runs/{run_id}/checkpoints"
OF_RUN = "/v1/training_runs/{run_id}/checkpoints"
CREATE_DOC = (
    "Store a checkpoint; the answer carries `should_stop` and `stopping_reasons`. Re-posting a "
    "stored step with the same values returns the stored checkpoint and decision."
)


@router.post(
    IN_EXPERIMENT,
    responses=ok(CheckpointOut),
    openapi_extra=body_schema(CheckpointCreate),
    description=CREATE_DOC,
)
def create_experiment_run_checkpoint(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    run_id: IdPath,
    body: JsonBody,
    fields: Fields = None,
) -> Response:
    """A checkpoint of the experiment's run."""
    spec = validate_body(CheckpointCreate, body)
    result = service.create_checkpoint(
        ctx, client_id, path_id(run_id), spec, path_id(experiment_id)
    )
    return render(request, result, fields)


@router.post(
    OF_RUN,
    responses=ok(CheckpointOut),
    openapi_extra=body_schema(CheckpointCreate),
    description=CREATE_DOC,
)
def create_checkpoint(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    run_id: IdPath,
    body: JsonBody,
    fields: Fields = None,
) -> Response:
    """A checkpoint of the run."""
    spec = validate_body(CheckpointCreate, body)
    return render(request, service.create_checkpoint(ctx, client_id, path_id(run_id), spec), fields)


@router.get(IN_EXPERIMENT, responses=ok(PaginationOut[CheckpointOut]))
def list_experiment_run_checkpoints(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    run_id: IdPath,
    limit: Limit = None,
    before: Before = None,
    after: After = None,
    fields: Fields = None,
) -> Response:
    """The run's checkpoints, newest first."""
    result = service.list_checkpoints(
        ctx, client_id, path_id(run_id), paging(limit, before, after), path_id(experiment_id)
    )
    return render(request, result, fields)


@router.get(OF_RUN, responses=ok(PaginationOut[CheckpointOut]))
def list_checkpoints(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    run_id: IdPath,
    limit: Limit = None,
    before: Before = None,
    after: After = None,
    fields: Fields = None,
) -> Response:
    """The run's checkpoints, newest first."""
    result = service.list_checkpoints(ctx, client_id, path_id(run_id), paging(limit, before, after))
    return render(request, result, fields)


@router.get(IN_EXPERIMENT + "/{checkpoint_id}", responses=ok(CheckpointOut))
def fetch_experiment_run_checkpoint(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    run_id: IdPath,
    checkpoint_id: IdPath,
    fields: Fields = None,
) -> Response:
    """One checkpoint."""
    result = service.fetch_checkpoint(
        ctx, client_id, path_id(run_id), path_id(checkpoint_id), path_id(experiment_id)
    )
    return render(request, result, fields)


@router.get(OF_RUN + "/{checkpoint_id}", responses=ok(CheckpointOut))
def fetch_checkpoint(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    run_id: IdPath,
    checkpoint_id: IdPath,
    fields: Fields = None,
) -> Response:
    """One checkpoint."""
    result = service.fetch_checkpoint(ctx, client_id, path_id(run_id), path_id(checkpoint_id))
    return render(request, result, fields)
