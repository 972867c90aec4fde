"""/v1/aiexperiments and /v1/clients/{client}/projects/{project}/aiexperiments
(sigopt-runs-wire.md §2.1, §2.8)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
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
from suggestion_server.services import ai_experiments as service
from suggestion_server.services.best_runs import best_training_runs
from suggestion_server.services.run_reservations import fetch_for_next_run
from suggestion_server.wire.ai_experiments import AIExperimentOut
from suggestion_server.wire.schemas import EmptyOut, PaginationOut
from suggestion_server.wire.training_runs import TrainingRunOut

router = APIRouter(tags=["ai experiments"])
IN_PROJECT = "/v1/clients/{client}/projects/{project}/aiexperiments"
ONE = "/v1/aiexperiments/{experiment_id}"
State = Annotated[str | None, Query(description="active (default), deleted or all")]


@router.post(IN_PROJECT, responses=ok(AIExperimentOut))
def create_ai_experiment(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    client: ClientPath,
    project: ProjectPath,
    body: JsonBody,
    fields: Fields = None,
) -> Response:
    """A Core experiment body with `budget` (a positive integer, or absent) instead of
    `observation_budget`; metrics are objects with names."""
    own_client(client, client_id)
    result = service.create_ai_experiment(ctx, client_id, project, body)
    return render(request, result, fields)


@router.get(IN_PROJECT, responses=ok(PaginationOut[AIExperimentOut]))
def list_project_ai_experiments(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    client: ClientPath,
    project: ProjectPath,
    limit: Limit = None,
    before: Before = None,
    after: After = None,
    state: State = None,
    fields: Fields = None,
) -> Response:
    """The project's AI experiments, newest first."""
    own_client(client, client_id)
    page = paging(limit, before, after)
    result = service.list_ai_experiments(ctx, client_id, page, project=project, state=state)
    return render(request, result, fields)


@router.get("/v1/aiexperiments", responses=ok(PaginationOut[AIExperimentOut]))
def list_ai_experiments(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    limit: Limit = None,
    before: Before = None,
    after: After = None,
    state: State = None,
    fields: Fields = None,
) -> Response:
    """The token's AI experiments in every project, newest first."""
    page = paging(limit, before, after)
    result = service.list_ai_experiments(ctx, client_id, page, project=None, state=state)
    return render(request, result, fields)


@router.get(ONE, responses=ok(AIExperimentOut))
async def fetch_ai_experiment(
    request: Request, ctx: Ctx, client_id: ClientId, experiment_id: IdPath, fields: Fields = None
) -> Response:
    """The AI experiment with run progress. While budget remains, the answer reserves one run
    of it for the caller's loop (docs/api.md, "How many runs a budget buys")."""
    eid = path_id(experiment_id)
    result = await fetch_for_next_run(ctx, client_id, eid, connection_of(request))
    return render(request, result, fields)


@router.put(ONE, responses=ok(AIExperimentOut))
def update_ai_experiment(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    body: JsonBody,
    fields: Fields = None,
) -> Response:
    """A Core experiment update with `budget`; `{"state": "active"}` unarchives."""
    result = service.update_ai_experiment(ctx, client_id, path_id(experiment_id), body)
    return render(request, result, fields)


@router.delete(ONE, responses=ok(EmptyOut))
def archive_ai_experiment(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    include_runs: Annotated[str | None, Query(description="true: archive its runs too")] = None,
) -> Response:
    """Archive (the experiment then reads `state: "deleted"`)."""
    service.archive_ai_experiment(
        ctx,
        client_id,
        path_id(experiment_id),
        include_runs=query_bool(include_runs, "include_runs"),
    )
    return render(request, {})


@router.get(ONE + "/best_training_runs", responses=ok(PaginationOut[TrainingRunOut]))
def fetch_best_training_runs(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    limit: Limit = None,
    before: Before = None,
    after: After = None,
    sort: Annotated[str | None, Query(description="created or updated (order is by id)")] = None,
    fields: Fields = None,
) -> Response:
    """The runs of the best observation (one metric) or of the Pareto front (two)."""
    page = paging(limit, before, after)
    result = best_training_runs(ctx, client_id, path_id(experiment_id), page, sort)
    return render(request, result, fields)
