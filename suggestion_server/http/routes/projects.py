"""/v1/tokens/self and /v1/clients/{client}/projects (sigopt-runs-wire.md §1)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from suggestion_server.http.auth import token_from_header
from suggestion_server.http.routes.client_paths import ClientPath, ProjectPath, own_client
from suggestion_server.http.routes.common import (
    After,
    Before,
    ClientId,
    Ctx,
    Fields,
    JsonBody,
    Limit,
    body_schema,
    ok,
    paging,
    query_bool,
    render,
)
from suggestion_server.services import projects as service
from suggestion_server.wire.projects import (
    ProjectCreate,
    ProjectOut,
    ProjectUpdate,
    TokenOut,
    token_json,
)
from suggestion_server.wire.schemas import PaginationOut, validate_body

router = APIRouter(tags=["projects"])
PROJECTS = "/v1/clients/{client}/projects"


@router.get("/v1/tokens/self", responses=ok(TokenOut))
def fetch_own_token(request: Request, client_id: ClientId, fields: Fields = None) -> Response:
    """The token of the request; ``client`` is what the official client builds paths with."""
    token = token_from_header(request.headers.get("authorization"))
    scope = request.state.grant.experiment_id  # set by the ClientId dependency
    return render(request, token_json(token, client_id, scope), fields)


@router.post(PROJECTS, responses=ok(ProjectOut), openapi_extra=body_schema(ProjectCreate))
def create_project(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    client: ClientPath,
    body: JsonBody,
    fields: Fields = None,
) -> Response:
    """A project: `id` (1-32 of a-z 0-9 - _ .), `name`, `metadata`; 409 when the id is taken."""
    own_client(client, client_id)
    spec = validate_body(ProjectCreate, body)
    return render(request, service.create_project(ctx, client_id, spec), fields)


@router.get(PROJECTS, responses=ok(PaginationOut[ProjectOut]))
def list_projects(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    client: ClientPath,
    limit: Limit = None,
    before: Before = None,
    after: After = None,
    deleted: Annotated[str | None, Query(description="true: include archived")] = None,
    fields: Fields = None,
) -> Response:
    """The client's projects, newest first."""
    own_client(client, client_id)
    result = service.list_projects(
        ctx,
        client_id,
        paging(limit, before, after),
        include_deleted=query_bool(deleted, "deleted"),
    )
    return render(request, result, fields)


@router.get(PROJECTS + "/{project}", responses=ok(ProjectOut))
def fetch_project(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    client: ClientPath,
    project: ProjectPath,
    fields: Fields = None,
) -> Response:
    """One project (404 when the client has none with this id)."""
    own_client(client, client_id)
    return render(request, service.fetch_project(ctx, client_id, project), fields)


@router.put(
    PROJECTS + "/{project}", responses=ok(ProjectOut), openapi_extra=body_schema(ProjectUpdate)
)
def update_project(
    request: Request,
    ctx: Ctx,
    client_id: ClientId,
    client: ClientPath,
    project: ProjectPath,
    body: JsonBody,
    fields: Fields = None,
) -> Response:
    """`name`, `metadata`, `deleted` (archive / restore)."""
    own_client(client, client_id)
    change = validate_body(ProjectUpdate, body)
    return render(request, service.update_project(ctx, client_id, project, change), fields)
