"""Queries over projects: lookups scoped to a client, inserts, and the counts a project shows."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from suggestion_server.storage.models import Experiment, Project, TrainingRun
from suggestion_server.wire.errors import not_found


def project_for_client(
    session: Session, client_id: int, reference_id: str, *, include_deleted: bool = True
) -> Project:
    """The client's project with string id ``reference_id``, or 404 (also for another
    client's). A deleted (archived) project is still found unless ``include_deleted`` is
    False."""
    conditions: list[ColumnElement[bool]] = [
        Project.client_id == client_id,
        Project.reference_id == reference_id,
    ]
    if not include_deleted:
        conditions.append(Project.deleted.is_(False))
    project = session.scalars(select(Project).where(*conditions)).first()
    if project is None:
        raise not_found()
    return project


def project_exists(session: Session, client_id: int, reference_id: str) -> bool:
    """Whether the client has a project with this string id."""
    found = session.scalar(
        select(Project.id).where(
            Project.client_id == client_id, Project.reference_id == reference_id
        )
    )
    return found is not None


def project_counts(
    session: Session, client_id: int, reference_ids: Sequence[str]
) -> dict[str, tuple[int, int]]:
    """reference id -> (non-deleted AI experiments, non-deleted runs) in it."""
    if not reference_ids:
        return {}
    experiments = dict(
        session.execute(
            select(Experiment.project, func.count())
            .where(
                Experiment.client_id == client_id,
                Experiment.project.in_(reference_ids),
                Experiment.state != "deleted",
            )
            .group_by(Experiment.project)
        ).all()
    )
    runs = dict(
        session.execute(
            select(TrainingRun.project, func.count())
            .where(
                TrainingRun.client_id == client_id,
                TrainingRun.project.in_(reference_ids),
                TrainingRun.deleted.is_(False),
            )
            .group_by(TrainingRun.project)
        ).all()
    )
    return {ref: (experiments.get(ref, 0), runs.get(ref, 0)) for ref in reference_ids}
