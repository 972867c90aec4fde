"""/v1/experiments/{id}/best_assignments and /best_practices"""

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
    Limit,
    ok,
    paging,
    path_id,
    render,
)
from suggestion_server.services.best_assignments import best_assignments
from suggestion_server.services.best_practices import best_practices
from suggestion_server.wire.schemas import BestAssignmentsOut, BestPracticesOut, PaginationOut

router = APIRouter(prefix="/v1/experiments/{experiment_id}", tags=["best_assignments"])


@router.get("/best_assignments", responses=ok(PaginationOut[BestAssignmentsOut]))
def fetch_best_assignments(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    experiment_id: IdPath,
    limit: Limit = None,
    before: Before = None,
    after: After = None,
    fields: Fields = None,
) -> Response:
    """The best observation (one optimized metric) or the Pareto front (two)."""
    page = paging(limit, before, after)
    return render(request, best_assignments(ctx, client_id, path_id(experiment_id), page), fields)


@router.get("/best_practices", responses=ok(BestPracticesOut))
def fetch_best_practices(
    request: Request, ctx: Ctx, client_id: ClientId, experiment_id: IdPath, fields: Fields = None
) -> Response:
    """What in the set-up or state works against the optimization (open suggestions beyond
    ``parallel_bandwidth``, a high failure rate, a small ``observation_budget``)."""
    return render(request, best_practices(ctx, client_id, path_id(experiment_id)), fields)
