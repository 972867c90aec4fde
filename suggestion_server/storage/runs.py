"""Queries over the runs of projects and AI experiments: lookups that reach deleted runs, run
counts per experiment, the experiment's lock for ending runs, run reservations, list filters.

(``storage.training_runs`` holds the Core training-run and checkpoint queries.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from suggestion_server.storage.models import Experiment, RunReservation, TrainingRun
from suggestion_server.wire.errors import not_found
from suggestion_server.wire.run_filters import RunFilter
from suggestion_server.wire.schemas import MAX_ID

_EXPERIMENTS = cast(Table, Experiment.__table__)
# FOR NO KEY UPDATE on PostgreSQL: it serializes with observation creation (FOR UPDATE) and with
# itself, but not with inserts that reference the experiment (a checkpoint's rung value holds a
# run's lock and inserts one; FOR UPDATE there could deadlock with a run being ended).
_EXPERIMENT_FOR_RUNS = (
    select(Experiment)
    .where(Experiment.id == bindparam("eid"), Experiment.client_id == bindparam("cid"))
    .with_for_update(key_share=True)
    .execution_options(populate_existing=True)
)
_EXPERIMENT_LOCK = (
    select(_EXPERIMENTS.c.id)
    .where(_EXPERIMENTS.c.id == bindparam("eid"))
    .with_for_update(key_share=True)
)
_RESERVATIONS = cast(Table, RunReservation.__table__)
_TAKE_OWN_RESERVATION = delete(_RESERVATIONS).where(
    _RESERVATIONS.c.experiment_id == bindparam("eid"),
    _RESERVATIONS.c.holder == bindparam("holder"),
)
_TAKE_RESERVATION = delete(_RESERVATIONS).where(
    _RESERVATIONS.c.id.in_(
        select(_RESERVATIONS.c.id)
        .where(_RESERVATIONS.c.experiment_id == bindparam("eid"))
        .order_by(_RESERVATIONS.c.expires_at)
        .limit(1)
        .scalar_subquery()
    )
)


def client_run(
    session: Session,
    client_id: int,
    run_id: int,
    *,
    lock: bool = False,
    include_deleted: bool = False,
) -> TrainingRun:
    """The client's run, or 404. ``lock`` takes its row lock and re-reads it (a row this session
    loaded before is refreshed: the lock's answer is the latest committed version)."""
    if not 0 < run_id <= MAX_ID:
        raise not_found()
    query = select(TrainingRun).where(TrainingRun.id == run_id, TrainingRun.client_id == client_id)
    if not include_deleted:
        query = query.where(TrainingRun.deleted.is_(False))
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    run = session.scalars(query).first()
    if run is None:
        raise not_found()
    return run


def experiment_id_of_run(session: Session, client_id: int, run_id: int) -> int | None:
    """The experiment of the client's run (None outside experiments); 404 for no such run."""
    if not 0 < run_id <= MAX_ID:
        raise not_found()
    row = session.execute(
        select(TrainingRun.experiment_id).where(
            TrainingRun.id == run_id, TrainingRun.client_id == client_id
        )
    ).first()
    if row is None:
        raise not_found()
    experiment_id: int | None = row[0]
    return experiment_id


def lock_experiment_for_runs(session: Session, client_id: int, experiment_id: int) -> Experiment:
    """The client's experiment, locked against observation creation and run endings (see
    ``_EXPERIMENT_FOR_RUNS``); 404 when it is not the client's."""
    if not 0 < experiment_id <= MAX_ID:
        raise not_found()
    found = session.scalars(_EXPERIMENT_FOR_RUNS, {"eid": experiment_id, "cid": client_id}).first()
    if found is None:
        raise not_found()
    return found


@dataclass(frozen=True)
class RunCounts:
    """Non-deleted runs of an experiment: all of them, and those with a ``completed`` time."""

    total: int = 0
    finished: int = 0


def run_counts(session: Session, experiment_ids: Sequence[int]) -> dict[int, RunCounts]:
    """Run counts per experiment, in one aggregate query."""
    if not experiment_ids:
        return {}
    rows = session.execute(
        select(TrainingRun.experiment_id, func.count(), func.count(TrainingRun.completed))
        .where(TrainingRun.experiment_id.in_(experiment_ids), TrainingRun.deleted.is_(False))
        .group_by(TrainingRun.experiment_id)
    ).all()
    found = {eid: RunCounts(total, finished) for eid, total, finished in rows}
    return {eid: found.get(eid, RunCounts()) for eid in experiment_ids}


def live_reservation_holders(session: Session, experiment_id: int, now: float) -> list[str | None]:
    """The holders of the experiment's reservations that have not lapsed (lapsed ones are
    deleted on the way)."""
    session.execute(
        delete(RunReservation).where(
            RunReservation.experiment_id == experiment_id, RunReservation.expires_at <= now
        )
    )
    return list(
        session.scalars(
            select(RunReservation.holder).where(RunReservation.experiment_id == experiment_id)
        )
    )


def hold_run_reservation(
    session: Session, experiment_id: int, holder: str | None, expires_at: float
) -> None:
    """Reserve one run until ``expires_at`` for ``holder``, replacing the one it held."""
    if holder is not None:
        session.execute(
            delete(RunReservation).where(
                RunReservation.experiment_id == experiment_id, RunReservation.holder == holder
            )
        )
    session.add(RunReservation(experiment_id=experiment_id, holder=holder, expires_at=expires_at))


def take_run_reservation(session: Session, experiment_id: int, holder: str | None) -> None:
    """A run was created: ``holder``'s reservation goes, else the one that lapses first (none:
    nothing changes). Takes the experiment's lock first, so a reservation decision (under the
    same lock) sees either neither this run nor the reservation it took, or both."""
    connection = session.connection()
    connection.execute(_EXPERIMENT_LOCK, {"eid": experiment_id})
    if holder is not None:
        own = connection.execute(_TAKE_OWN_RESERVATION, {"eid": experiment_id, "holder": holder})
        if own.rowcount:
            return
    connection.execute(_TAKE_RESERVATION, {"eid": experiment_id})


def delete_experiment_runs(session: Session, experiment_id: int, now: int) -> None:
    """Soft delete every run of the experiment (archiving it with ``include_runs``)."""
    session.execute(
        update(TrainingRun)
        .where(TrainingRun.experiment_id == experiment_id, TrainingRun.deleted.is_(False))
        .values(deleted=True, updated=now)
        .execution_options(synchronize_session=False)
    )


_FILTER_COLUMNS: dict[str, Any] = {
    "experiment": TrainingRun.experiment_id,
    "suggestion": TrainingRun.suggestion_id,
    "observation": TrainingRun.observation_id,
    "id": TrainingRun.id,
    "state": TrainingRun.state,
    "name": TrainingRun.name,
    "created": TrainingRun.created,
    "updated": TrainingRun.updated,
    "completed": TrainingRun.completed,
}


def run_filter_conditions(filters: Sequence[RunFilter]) -> list[ColumnElement[bool]]:
    """SQL conditions for the ``filters`` of a run list (SQL comparisons: a null never
    matches ``==``/``!=``, as in the open-source server's SQL)."""
    conditions: list[ColumnElement[bool]] = []
    for f in filters:
        column = _FILTER_COLUMNS[f.field]
        if f.operator == "isnull":
            conditions.append(column.is_(None) if f.value else column.is_not(None))
        elif f.operator == "==":
            conditions.append(column == f.value)
        elif f.operator == "!=":
            conditions.append(column != f.value)
        elif f.operator == ">=":
            conditions.append(column >= f.value)
        elif f.operator == ">":
            conditions.append(column > f.value)
        elif f.operator == "<=":
            conditions.append(column <= f.value)
        else:
            conditions.append(column < f.value)
    return conditions


def best_runs_conditions(experiment_id: int, observation_ids: Sequence[int]) -> list[Any]:
    """The conditions of the non-deleted runs whose observation is one of ``observation_ids``."""
    return [
        TrainingRun.experiment_id == experiment_id,
        TrainingRun.deleted.is_(False),
        TrainingRun.observation_id.in_(observation_ids),
    ]
