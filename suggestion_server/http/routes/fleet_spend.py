"""/v1/experiments/{id}/fleet_spend: the agents' shared spend estimate (an optfleet extension)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from suggestion_server.http.routes.common import (
    ClientId,
    Ctx,
    IdPath,
    JsonBody,
    body_schema,
    ok,
    path_id,
    render,
)
from suggestion_server.services import fleet_spend as service
from suggestion_server.wire.fleet_spend import (
    FleetSpendClaimIn,
    FleetSpendClaimOut,
    FleetSpendOut,
    FleetSpendReportIn,
)
from suggestion_server.wire.schemas import validate_body

router = APIRouter(prefix="/v1/experiments/{experiment_id}/fleet_spend", tags=["fleet spend"])


@router.get("", responses=ok(FleetSpendOut))
def fetch_fleet_spend(
    request: Request, ctx: Ctx, client_id: ClientId, experiment_id: IdPath
) -> Response:
    """The shared figure and how long it stays fresh."""
    return render(request, service.fetch_fleet_spend(ctx, client_id, path_id(experiment_id)))


@router.put("", responses=ok(FleetSpendOut), openapi_extra=body_schema(FleetSpendReportIn))
def report_fleet_spend(
    request: Request, ctx: Ctx, client_id: ClientId, experiment_id: IdPath, body: JsonBody
) -> Response:
    """Store a figure an agent measured from EC2 (ignored if a newer one is stored)."""
    report = validate_body(FleetSpendReportIn, body)
    stored = service.report_fleet_spend(ctx, client_id, path_id(experiment_id), report)
    return render(request, stored)


@router.post(
    "/claims", responses=ok(FleetSpendClaimOut), openapi_extra=body_schema(FleetSpendClaimIn)
)
def claim_refresh(
    request: Request, ctx: Ctx, client_id: ClientId, experiment_id: IdPath, body: JsonBody
) -> Response:
    """Ask to refresh the figure: granted to one agent while it is stale."""
    claim = validate_body(FleetSpendClaimIn, body)
    return render(
        request, service.claim_refresh(ctx, client_id, path_id(experiment_id), claim.instance_id)
    )
