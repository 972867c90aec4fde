"""/v1/experiments/{id}/best_assignments"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from suggestion_server.routes.common import (
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
from suggestion_server.schemas import BestAssignmentsOut, PaginationOut
from suggestion_server.services.best_assignments import best_assignments

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
