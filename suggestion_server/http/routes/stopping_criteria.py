"""/v1/experiments/{id}/stopping_criteria"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from suggestion_server.http.routes.common import ClientId, Ctx, Fields, IdPath, ok, path_id, render
from suggestion_server.services.stopping_criteria import stopping_criteria
from suggestion_server.wire.schemas import StoppingCriteriaOut

router = APIRouter(prefix="/v1/experiments/{experiment_id}", tags=["stopping_criteria"])


@router.get("/stopping_criteria", responses=ok(StoppingCriteriaOut))
def fetch_stopping_criteria(
    request: Request, ctx: Ctx, client_id: ClientId, experiment_id: IdPath, fields: Fields = None
) -> Response:
    """Whether SigOpt's criteria advise stopping: ``possible_stagnation`` (the last 5 x
    parameters observations improved on none of the 5 best before them) and
    ``observation_budget_reached`` (more observations than the budget)."""
    return render(request, stopping_criteria(ctx, client_id, path_id(experiment_id)), fields)
