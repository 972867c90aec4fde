"""Projects (sigopt-runs-wire.md §1): create, fetch, list, update. A token sees only its
client's projects."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError

from suggestion_server.services.context import ServerContext
from suggestion_server.services.render import pagination_json
from suggestion_server.storage.models import Project
from suggestion_server.storage.projects import project_counts, project_exists, project_for_client
from suggestion_server.storage.queries import dumps, loads, page_of
from suggestion_server.wire.errors import ApiError
from suggestion_server.wire.paging import PageRequest
from suggestion_server.wire.projects import ProjectCreate, ProjectUpdate


def project_json(row: Project, counts: tuple[int, int]) -> dict[str, Any]:
    """A project with its AI-experiment and run counts."""
    return {
        "object": "project",
        "id": row.reference_id,
        "name": row.name,
        "client": str(row.client_id),
        "user": None,
        "created": row.created,
        "updated": row.updated,
        "metadata": loads(row.metadata_json),
        "experiment_count": counts[0],
        "training_run_count": counts[1],
        "deleted": row.deleted,
    }


def _conflict(client_id: int, reference_id: str) -> ApiError:
    return ApiError(
        409, f"Project {reference_id} already exists for client {client_id}; pick another id"
    )


def create_project(ctx: ServerContext, client_id: int, body: ProjectCreate) -> dict[str, Any]:
    """A new project; 409 when the client already has one with this id (also a racing create:
    the unique key decides)."""
    now = ctx.now()
    try:
        with ctx.store.write() as session:
            if project_exists(session, client_id, body.id):
                raise _conflict(client_id, body.id)
            row = Project(
                client_id=client_id,
                reference_id=body.id,
                name=body.name,
                metadata_json=dumps(body.metadata),
                created=now,
                updated=now,
                deleted=False,
            )
            session.add(row)
            session.flush()
            return project_json(row, (0, 0))
    except IntegrityError:
        raise _conflict(client_id, body.id) from None


def fetch_project(ctx: ServerContext, client_id: int, reference_id: str) -> dict[str, Any]:
    """One project (archived ones too: ``deleted`` says so)."""
    with ctx.store.read() as session:
        row = project_for_client(session, client_id, reference_id)
        return project_json(row, project_counts(session, client_id, [reference_id])[reference_id])


def list_projects(
    ctx: ServerContext, client_id: int, req: PageRequest, *, include_deleted: bool
) -> dict[str, Any]:
    """The client's projects, newest first."""
    with ctx.store.read() as session:
        conditions = [Project.client_id == client_id]
        if not include_deleted:
            conditions.append(Project.deleted.is_(False))
        page = page_of(session, Project, conditions, req)
        counts = project_counts(session, client_id, [p.reference_id for p in page.rows])
        data = [project_json(p, counts[p.reference_id]) for p in page.rows]
        return pagination_json(page, data)


def update_project(
    ctx: ServerContext, client_id: int, reference_id: str, body: ProjectUpdate
) -> dict[str, Any]:
    """``name``, ``metadata`` (null clears it), ``deleted`` (archive / restore)."""
    fields = body.model_fields_set
    with ctx.store.write() as session:
        row = project_for_client(session, client_id, reference_id)
        if "name" in fields:
            if body.name is None:
                raise ApiError(400, "Invalid value for name: null - expected a string")
            row.name = body.name
        if "metadata" in fields:
            row.metadata_json = dumps(body.metadata)
        if body.deleted is not None:
            row.deleted = body.deleted
        row.updated = ctx.now()
        session.flush()
        return project_json(row, project_counts(session, client_id, [reference_id])[reference_id])
