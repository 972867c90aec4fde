"""Runs of AI experiments and projects, and /v1/training_runs/{id} with MERGE
(sigopt-runs-wire.md §2.2-2.8, §3)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from suggestion_server.http.routes.client_paths import (
    ClientPath,
    ProjectPath,
    connection_of,
    own_client,
)
from suggestion_server.http.routes.common import (
    After,
    Before,
    ClientId,
    Ctx,
    Fields,
    IdPath,
    JsonBody,
    Limit,
    ok,
    paging,
    path_id,
    query_bool,
    render,
)
from suggestion_server.services import run_files
from suggestion_server.services import runs as service
from suggestion_server.wire.run_filters import parse_run_filters
from suggestion_server.wire.schemas import EmptyOut, PaginationOut
from suggestion_server.wire.training_runs import TrainingRunOut

router = APIRouter(tags=["runs"])
PROJECT_RUNS = "/v1/clients/{client}/projects/{project}/training_runs"
ONE = "/v1/training_runs/{run_id}"
UPDATE_DOC = (
    "Body keys: assignments, assignments_meta, assignments_sources, datasets, deleted, "
    "dev_metadata, favorite, logs, metadata, model, name, project, source_code, state, "
    "sys_metadata, values. A change that leaves an AI-experiment run completed or failed for "
    "the first time makes its one observation."
)


@router.post("/v1/aiexperiments/{experiment_id}/training_runs", responses=ok(TrainingRunOut))
async def create_experiment_run(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    body: JsonBody,
    fields: Fields = None,
) -> Response:
    """A run with a suggestion served now (`name` required; `assignments` naming the
    experiment's parameters make an explicit suggestion; `state` completed/failed ends it)."""
    eid = path_id(experiment_id)
    # Counted from arrival, as suggestion creates are: the suggestion pool's demand signal.
    with ctx.pool.asking(eid):
        result = await run_in_threadpool(
            service.create_experiment_run, ctx, client_id, eid, body, connection_of(request)
        )
    return render(request, result, fields)


@router.post(PROJECT_RUNS, responses=ok(TrainingRunOut))
def create_project_run(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    client: ClientPath,
    project: ProjectPath,
    body: JsonBody,
    fields: Fields = None,
) -> Response:
    """A run outside any experiment (`name` required)."""
    own_client(client, client_id)
    return render(request, service.create_project_run(ctx, client_id, project, body), fields)


@router.post(PROJECT_RUNS + "/batch", responses=ok(PaginationOut[TrainingRunOut]))
def create_project_runs(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    client: ClientPath,
    project: ProjectPath,
    body: JsonBody,
    fields: Fields = None,
) -> Response:
    """`sigopt.upload_runs`: `{"runs": [run, ...]}` (each as for one run; at most 10,000) all
    created in one transaction, or none and a 400 naming the bad one."""
    own_client(client, client_id)
    result = service.create_project_runs(ctx, client_id, project, body)
    # The client sends its fields="id" in the body.
    asked = body.get("fields") if isinstance(body, dict) else None
    return render(request, result, fields or (asked if isinstance(asked, str) else None))


@router.get(PROJECT_RUNS, responses=ok(PaginationOut[TrainingRunOut]))
def list_project_runs(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    client: ClientPath,
    project: ProjectPath,
    limit: Limit = None,
    before: Before = None,
    after: After = None,
    filters: Annotated[
        str | None,
        Query(description='JSON array of {"field", "operator", "value"}; all must hold'),
    ] = None,
    deleted: Annotated[str | None, Query(description="true: include archived")] = None,
    fields: Fields = None,
) -> Response:
    """The project's runs, newest first."""
    own_client(client, client_id)
    result = service.list_project_runs(
        ctx,
        client_id,
        project,
        paging(limit, before, after),
        filters=parse_run_filters(filters),
        include_deleted=query_bool(deleted, "deleted"),
    )
    return render(request, result, fields)


@router.get(ONE, responses=ok(TrainingRunOut))
def fetch_run(
    request: Request, ctx: Ctx, client_id: ClientId, run_id: IdPath, fields: Fields = None
) -> Response:
    """One run, by its id alone (runs of projects, AI experiments and Core experiments)."""
    return render(request, service.fetch_run(ctx, client_id, path_id(run_id)), fields)


# MERGE is no OpenAPI method: the route is documented in docs/api.md instead.
@router.api_route(ONE, methods=["MERGE"], include_in_schema=False)
def merge_run(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    run_id: IdPath,
    body: JsonBody,
    fields: Fields = None,
) -> Response:
    """Objects merge recursively, a null deletes its key."""
    result = service.update_run(ctx, client_id, path_id(run_id), body, replace=False)
    return render(request, result, fields)


@router.put(ONE, responses=ok(TrainingRunOut), description=UPDATE_DOC)
def replace_run_fields(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    run_id: IdPath,
    body: JsonBody,
    fields: Fields = None,
) -> Response:
    """Each given key replaced whole; absent keys unchanged."""
    result = service.update_run(ctx, client_id, path_id(run_id), body, replace=True)
    return render(request, result, fields)


@router.delete(ONE, responses=ok(EmptyOut))
def archive_run(request: Request, ctx: Ctx, client_id: ClientId, run_id: IdPath) -> Response:
    """Archive (soft delete); `PUT {"deleted": false}` restores it."""
    service.delete_run(ctx, client_id, path_id(run_id))
    return render(request, {})


@router.post(ONE + "/files")
def create_run_file(
    request: Request, ctx: Ctx, client_id: ClientId, run_id: IdPath, body: JsonBody
) -> Response:
    """`run.log_image`: the image's description (content_length, content_md5, content_type,
    filename, name) answered with an upload URL on this server; the image is not stored."""
    rid = path_id(run_id)
    url = str(request.url_for("drop_run_file", run_id=str(rid)))
    auth = request.headers.get("authorization", "")
    return render(request, run_files.accept_run_file(ctx, client_id, rid, body, url, auth))


@router.put(ONE + "/files/upload", include_in_schema=False)
async def drop_run_file(
    request: Request, ctx: Ctx, client_id: ClientId, run_id: IdPath
) -> Response:
    """Where `log_image` sends the bytes: read and dropped (optfleet stores no files)."""
    await run_in_threadpool(run_files.check_upload_target, ctx, client_id, path_id(run_id))
    async for _ in request.stream():
        pass
    return Response(status_code=204)
