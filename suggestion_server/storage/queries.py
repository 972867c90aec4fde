"""Queries over the server's tables: lookups scoped to a client, pages, progress aggregates, and
the ``RowSource`` the suggestion engine reads rows through."""

from __future__ import annotations

import json
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    bindparam,
    exists,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from suggestion_server.optimizer.api import ObservationRow, OpenSuggestionRow
from suggestion_server.storage.models import (
    Checkpoint,
    Experiment,
    Observation,
    Project,
    QueuedSuggestion,
    Suggestion,
    TrainingRun,
)
from suggestion_server.wire.errors import not_found
from suggestion_server.wire.paging import PageRequest, paging_markers
from suggestion_server.wire.schemas import MAX_ID

Row = TypeVar(
    "Row", Experiment, Suggestion, Observation, QueuedSuggestion, TrainingRun, Checkpoint, Project
)


def loads(text_value: str | None) -> Any:
    """Parse a stored JSON column (None stays None)."""
    return None if text_value is None else json.loads(text_value)


def dumps(value: Any) -> str | None:
    """Serialize a value for a JSON column (None stays None)."""
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


# Hot-path statements are built once: constructing a statement costs more CPU than running it.
_EXPERIMENT = select(Experiment).where(
    Experiment.id == bindparam("eid"), Experiment.client_id == bindparam("cid")
)
# FOR NO KEY UPDATE on PostgreSQL: it serializes the experiment's writers as FOR UPDATE does, but
# lets an insert that references the experiment (a rung value, under a run's lock) take its
# key-share lock, so observation (experiment, then run) and checkpoint (run, then an insert
# referencing the experiment) cannot deadlock. The key never changes: this is the right mode.
_EXPERIMENT_FOR_UPDATE = _EXPERIMENT.with_for_update(key_share=True)
_SUGGESTION = select(Suggestion).where(
    Suggestion.id == bindparam("sid"),
    Suggestion.experiment_id == bindparam("eid"),
    Suggestion.deleted.is_(False),
)
_OBSERVATION = select(Observation).where(
    Observation.id == bindparam("oid"),
    Observation.experiment_id == bindparam("eid"),
    Observation.deleted.is_(False),
)
_SUGGESTIONS = cast(Table, Suggestion.__table__)
_OBSERVATIONS = cast(Table, Observation.__table__)
_TRAINING_RUNS = cast(Table, TrainingRun.__table__)
_CLOSE_SUGGESTION = (
    update(_SUGGESTIONS)
    .where(_SUGGESTIONS.c.id == bindparam("sid"), _SUGGESTIONS.c.closed.is_(False))
    .values(closed=True)
)
_EXPERIMENTS = cast(Table, Experiment.__table__)
_INSERT_OBSERVATION = insert(_OBSERVATIONS)
# One query for "the client's suggestion": a foreign experiment and a missing suggestion are
# the same 404 anyway.
_CLIENT_SUGGESTION = (
    select(_SUGGESTIONS)
    .join(_EXPERIMENTS, _EXPERIMENTS.c.id == _SUGGESTIONS.c.experiment_id)
    .where(
        _SUGGESTIONS.c.id == bindparam("sid"),
        _SUGGESTIONS.c.experiment_id == bindparam("eid"),
        _EXPERIMENTS.c.client_id == bindparam("cid"),
        _SUGGESTIONS.c.deleted.is_(False),
    )
)
_DELETE_SUGGESTION = (
    update(_SUGGESTIONS).where(_SUGGESTIONS.c.id == bindparam("sid")).values(deleted=True)
)
_SUGGESTION_AND_ITS_OBSERVATION = (
    select(
        _SUGGESTIONS.c.id,
        _SUGGESTIONS.c.assignments_json,
        _SUGGESTIONS.c.closed,
        _OBSERVATIONS.c.id.label("observation_id"),
        _TRAINING_RUNS.c.id.label("training_run_id"),
    )
    .outerjoin(
        _OBSERVATIONS,
        (_OBSERVATIONS.c.suggestion_id == _SUGGESTIONS.c.id) & _OBSERVATIONS.c.deleted.is_(False),
    )
    # The suggestion's training run, if any (an observation for the suggestion ends it).
    .outerjoin(_TRAINING_RUNS, _TRAINING_RUNS.c.suggestion_id == _SUGGESTIONS.c.id)
    .where(
        _SUGGESTIONS.c.id == bindparam("sid"),
        _SUGGESTIONS.c.experiment_id == bindparam("eid"),
        _SUGGESTIONS.c.deleted.is_(False),
    )
    .order_by(_OBSERVATIONS.c.id)
    .limit(1)
)
_SET_CLIENT_SUGGESTION_METADATA_ONLY = (
    update(_SUGGESTIONS)
    .where(
        _SUGGESTIONS.c.id == bindparam("sid"),
        _SUGGESTIONS.c.experiment_id == bindparam("eid"),
        _SUGGESTIONS.c.deleted.is_(False),
        exists()
        .where(_EXPERIMENTS.c.id == bindparam("eid"), _EXPERIMENTS.c.client_id == bindparam("cid"))
        .correlate(),
    )
    .values(metadata_json=bindparam("metadata"))
)
_SET_CLIENT_SUGGESTION_METADATA = _SET_CLIENT_SUGGESTION_METADATA_ONLY.returning(*_SUGGESTIONS.c)


_EXPERIMENT_ROW = select(_EXPERIMENTS).where(
    _EXPERIMENTS.c.id == bindparam("eid"), _EXPERIMENTS.c.client_id == bindparam("cid")
)
_EXPERIMENT_ROW_FOR_UPDATE = _EXPERIMENT_ROW.with_for_update(key_share=True)  # as above
# The same row plus whether suggestions are queued: suggestion creation's first read, one round
# trip instead of two.
_EXPERIMENT_ROW_WITH_QUEUE = select(
    _EXPERIMENTS,
    exists()
    .where(QueuedSuggestion.experiment_id == _EXPERIMENTS.c.id)
    .label("has_queued_suggestions"),
).where(_EXPERIMENTS.c.id == bindparam("eid"), _EXPERIMENTS.c.client_id == bindparam("cid"))


def experiment_row_for_client(
    session: Session,
    client_id: int,
    experiment_id: int,
    *,
    lock: bool = False,
    with_queue: bool = False,
) -> Any:
    """Like ``experiment_for_client`` but a read-only row (cheaper than an ORM object): the
    hot paths only read the experiment. ``with_queue`` adds ``has_queued_suggestions``."""
    if not 0 < experiment_id <= MAX_ID:
        raise not_found()
    if with_queue and lock:
        raise ValueError("with_queue reads without a lock")
    query = (
        _EXPERIMENT_ROW_WITH_QUEUE
        if with_queue
        else _EXPERIMENT_ROW_FOR_UPDATE
        if lock
        else _EXPERIMENT_ROW
    )
    row = session.connection().execute(query, {"eid": experiment_id, "cid": client_id}).first()
    if row is None:
        raise not_found()
    return row


def experiment_for_client(
    session: Session, client_id: int, experiment_id: int, *, lock: bool = False
) -> Experiment:
    """The client's experiment, or 404. ``lock`` takes the row lock (``SELECT … FOR UPDATE`` on
    PostgreSQL) that serializes suggestion and observation creation per experiment."""
    if not 0 < experiment_id <= MAX_ID:
        raise not_found()
    query = _EXPERIMENT_FOR_UPDATE if lock else _EXPERIMENT
    experiment = session.scalars(query, {"eid": experiment_id, "cid": client_id}).first()
    if experiment is None:
        raise not_found()
    return experiment


def suggestion_in(session: Session, experiment_id: int, suggestion_id: int) -> Suggestion | None:
    """A non-deleted suggestion of the experiment, or None."""
    if not 0 < suggestion_id <= MAX_ID:
        return None
    return session.scalars(_SUGGESTION, {"sid": suggestion_id, "eid": experiment_id}).first()


def observation_in(session: Session, experiment_id: int, observation_id: int) -> Observation | None:
    """A non-deleted observation of the experiment, or None."""
    if not 0 < observation_id <= MAX_ID:
        return None
    return session.scalars(_OBSERVATION, {"oid": observation_id, "eid": experiment_id}).first()


def client_suggestion(
    session: Session, client_id: int, experiment_id: int, suggestion_id: int
) -> Any:
    """The client's non-deleted suggestion as a row (attributes like the model), or 404."""
    if not (0 < experiment_id <= MAX_ID and 0 < suggestion_id <= MAX_ID):
        raise not_found()
    row = (
        session.connection()
        .execute(_CLIENT_SUGGESTION, {"sid": suggestion_id, "eid": experiment_id, "cid": client_id})
        .first()
    )
    if row is None:
        raise not_found()
    return row


def delete_suggestion_row(session: Session, suggestion_id: int) -> None:
    """Soft delete one suggestion."""
    session.connection().execute(_DELETE_SUGGESTION, {"sid": suggestion_id})


def suggestion_and_its_observation(session: Session, experiment_id: int, suggestion_id: int) -> Any:
    """(id, assignments_json, closed, observation_id, training_run_id) of a non-deleted
    suggestion, with the oldest live observation referencing it (None if there is none) and its
    training run (None if it has none); None if no suggestion."""
    if not 0 < suggestion_id <= MAX_ID:
        return None
    return (
        session.connection()
        .execute(_SUGGESTION_AND_ITS_OBSERVATION, {"sid": suggestion_id, "eid": experiment_id})
        .first()
    )


def close_suggestion(session: Session, suggestion_id: int) -> None:
    """Mark the suggestion closed (an observation references it); never reopened."""
    session.connection().execute(_CLOSE_SUGGESTION, {"sid": suggestion_id})


def set_client_suggestion_metadata(
    connection: Connection,
    client_id: int,
    experiment_id: int,
    suggestion_id: int,
    metadata_json: str | None,
) -> Any:
    """Replace the metadata of the client's non-deleted suggestion and return the row, or 404.

    One statement (the lease renewal every worker repeats): the ownership check is part of the
    UPDATE, so on PostgreSQL it can run in autocommit as a single round trip.
    """
    if not (0 < experiment_id <= MAX_ID and 0 < suggestion_id <= MAX_ID):
        raise not_found()
    params = {"sid": suggestion_id, "eid": experiment_id, "cid": client_id}
    values = {**params, "metadata": metadata_json}
    if connection.dialect.update_returning:
        row = connection.execute(_SET_CLIENT_SUGGESTION_METADATA, values).first()
    else:  # SQLite before 3.35 has no RETURNING; its write transaction is serialized anyway
        changed = connection.execute(_SET_CLIENT_SUGGESTION_METADATA_ONLY, values).rowcount
        row = connection.execute(_CLIENT_SUGGESTION, params).first() if changed else None
    if row is None:
        raise not_found()
    return row


def insert_observation(session: Session, row: dict[str, Any]) -> int:
    """Insert an observation row (a plain INSERT) and return its id."""
    result = session.connection().execute(_INSERT_OBSERVATION, row)
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("INSERT returned no primary key")
    return int(key[0])


def bump_version(session: Session, experiment: Experiment | Any) -> None:
    """Tell the engine that rows it has read changed (its cached study must be rebuilt)."""
    session.execute(
        update(Experiment)
        .where(Experiment.id == experiment.id)
        .values(version=Experiment.version + 1)
        .execution_options(synchronize_session=False)
    )


def metadata_filters(
    session: Session, table: type[Suggestion] | type[Observation], pairs: list[tuple[str, str]]
) -> list[ColumnElement[bool]]:
    """SQL conditions for ``metadata.<key>=<value>`` filters (values compared as text)."""
    conditions: list[ColumnElement[bool]] = []
    name = table.__tablename__
    sqlite = session.get_bind().dialect.name == "sqlite"
    for i, (key, value) in enumerate(pairs):
        if sqlite:
            clause = text(
                f"EXISTS (SELECT 1 FROM json_each({name}.metadata_json) AS j "  # noqa: S608 - table name is ours; key and value are bound
                f"WHERE j.key = :mk{i} AND CAST(j.value AS TEXT) = :mv{i})"
            )
        else:
            clause = text(f"(CAST({name}.metadata_json AS jsonb) ->> :mk{i}) = :mv{i}")
        conditions.append(clause.bindparams(**{f"mk{i}": key, f"mv{i}": value}))  # type: ignore[arg-type]
    return conditions


@dataclass(frozen=True)
class Page:
    """One page of rows (newest first) with the total count and the paging markers."""

    rows: Sequence[Any]
    count: int
    paging: dict[str, str | None]


def page_of(
    session: Session, table: type[Row], conditions: Sequence[ColumnElement[bool]], req: PageRequest
) -> Page:
    """The page ``req`` asks for among rows of ``table`` matching ``conditions``."""
    id_col = table.id
    count = session.scalar(select(func.count()).select_from(table).where(*conditions)) or 0
    if req.limit == 0:
        newest = session.scalar(select(func.max(id_col)).where(*conditions)) if count else None
        return Page([], count, paging_markers([], req, newest, False, False))
    query = select(table).where(*conditions)
    if req.before is not None:
        query = query.where(id_col < req.before)
    if req.after is not None:
        query = query.where(id_col > req.after)
    if req.after is not None and req.before is None:
        # Walking towards newer items: the ``limit`` items just above ``after``.
        rows = list(session.scalars(query.order_by(id_col.asc()).limit(req.limit + 1)))
        has_newer = len(rows) > req.limit
        rows = rows[: req.limit][::-1]
        has_older = bool(rows) and bool(
            session.scalar(select(exists().where(*conditions, id_col < rows[-1].id)))
        )
    else:
        rows = list(session.scalars(query.order_by(id_col.desc()).limit(req.limit + 1)))
        has_older = len(rows) > req.limit
        rows = rows[: req.limit]
        has_newer = (
            req.before is not None
            and bool(rows)
            and bool(session.scalar(select(exists().where(*conditions, id_col > rows[0].id))))
        )
    ids = [row.id for row in rows]
    return Page(rows, count, paging_markers(ids, req, None, has_older, has_newer))


@dataclass(frozen=True)
class ProgressRows:
    """What ``progress`` is computed from."""

    observation_count: int
    open_suggestion_count: int
    first: Observation | None
    last: Observation | None
    best: Observation | None


def live_observations(session: Session, experiment_id: int) -> Sequence[Observation]:
    """Every non-failed, non-deleted observation of the experiment, oldest first."""
    return session.scalars(
        select(Observation)
        .where(
            Observation.experiment_id == experiment_id,
            Observation.deleted.is_(False),
            Observation.failed.is_(False),
        )
        .order_by(Observation.id)
    ).all()


def _stopped_losing(reason: str | None, stopped_at: int | None, last_step: int | None) -> bool:
    """Whether a run was stopped by the cross-run rule (reasons ``<rule>_rung_<step>``,
    domain/early_stopping.py's ``rule_reason``) and stopped there: a configuration seen to be
    losing. A run that converged or reached ``max_checkpoints`` has its final value."""
    return reason is not None and "_rung_" in reason and stopped_at == last_step


class SqlRowSource:
    """The engine's read access to one experiment's rows, inside the caller's transaction."""

    def __init__(self, session: Session, experiment_id: int, metric_names: dict[str, str]) -> None:
        """``metric_names`` maps stored metric name (``""`` for unnamed) to the engine's name."""
        self._session = session
        self._experiment_id = experiment_id
        self._metric_names = metric_names

    def observations_after(
        self, observation_id: int, known: Container[int] = ()
    ) -> Sequence[ObservationRow]:
        """Non-deleted observations with id > ``observation_id``, ascending by id; rows in
        ``known`` are left out (the engine re-reads a window of recent ids and decoding the
        JSON of rows it already has was a measurable part of every suggestion)."""
        rows = self._session.execute(
            select(
                Observation.id,
                Observation.suggestion_id,
                Observation.assignments_json,
                Observation.values_json,
                Observation.failed,
                TrainingRun.stopped_at_step,
                TrainingRun.last_step,
                TrainingRun.stopping_reason,
            )
            .outerjoin(
                TrainingRun,
                (TrainingRun.suggestion_id == Observation.suggestion_id)
                & (TrainingRun.observation_id == Observation.id),
            )
            .where(
                Observation.experiment_id == self._experiment_id,
                Observation.deleted.is_(False),
                Observation.id > observation_id,
            )
            .order_by(Observation.id)
        ).all()
        result = []
        for oid, sid, assignments, values, failed, stopped_at, last_step, reason in rows:
            if oid in known:
                continue
            mapped: dict[str, float] | None = None
            if not failed:
                mapped = {}
                for entry in json.loads(values):
                    key = self._metric_names.get(entry["name"] or "")
                    if key is not None:
                        mapped[key] = float(entry["value"])
            result.append(
                ObservationRow(
                    id=oid,
                    suggestion_id=sid,
                    assignments=json.loads(assignments),
                    values=mapped,
                    failed=bool(failed),
                    # Told to stop and stopped there: a run that went on past the answer ran on.
                    stopped_at_step=stopped_at
                    if _stopped_losing(reason, stopped_at, last_step)
                    else None,
                )
            )
        return result

    def open_suggestions(self) -> Sequence[OpenSuggestionRow]:
        """Every open, non-deleted suggestion of the experiment."""
        rows = self._session.execute(
            select(Suggestion.id, Suggestion.assignments_json).where(
                Suggestion.experiment_id == self._experiment_id,
                Suggestion.deleted.is_(False),
                Suggestion.closed.is_(False),
            )
        ).all()
        return [OpenSuggestionRow(id=sid, assignments=json.loads(a)) for sid, a in rows]
