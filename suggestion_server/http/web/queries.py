"""Read-only queries for the web page: tokens by id, and one experiment's rows (suggestions,
observations, an AI experiment's runs) as JSON arrays."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, func, select
from sqlalchemy.orm import Session

from suggestion_server.storage.models import Observation, Suggestion, Token, TrainingRun

_SUGGESTIONS = cast(Table, Suggestion.__table__)
_OBSERVATIONS = cast(Table, Observation.__table__)
_RUNS = cast(Table, TrainingRun.__table__)


def token_by_id(session: Session, token_id: int) -> tuple[str, int] | None:
    """(stored hash, client id) of the token with this row id (None once it is gone)."""
    row = session.execute(
        select(Token.token_hash, Token.client_id).where(Token.id == token_id)
    ).first()
    return None if row is None else (str(row[0]), int(row[1]))


def token_row(session: Session, token_hash: str) -> tuple[int, int] | None:
    """(token row id, client id) of an operator token given by its hash, or None (also for a
    token scoped to one experiment: it cannot sign in to the page, docs/api.md)."""
    row = session.execute(
        select(Token.id, Token.client_id).where(
            Token.token_hash == token_hash, Token.experiment_id.is_(None)
        )
    ).first()
    return None if row is None else (int(row[0]), int(row[1]))


def _json_or_null(text_value: str | None) -> str:
    return text_value if text_value else "null"


def _newest_first(
    session: Session,
    table: Table,
    experiment_id: int,
    columns: str,
    *conditions: ColumnElement[bool],
) -> list[Any]:
    """``columns`` (names, space-separated) of the experiment's non-deleted rows of ``table``
    meeting ``conditions``, newest first."""
    return list(
        session.connection()
        .execute(
            select(*(table.c[name] for name in columns.split()))
            .where(table.c.experiment_id == experiment_id, table.c.deleted.is_(False), *conditions)
            .order_by(table.c.id.desc())
        )
        .all()
    )


@dataclass(frozen=True)
class RowsJson:
    """Two JSON arrays (open suggestions, live observations) and their lengths, and each live
    observation's (failed, metadata JSON text), newest first, for the cost figures."""

    suggestions: str
    observations: str
    suggestion_count: int
    observation_count: int
    observation_metadata: list[tuple[bool, str | None]]


def experiment_rows_json(session: Session, experiment_id: int) -> RowsJson:
    """Open suggestions and live observations (newest first) of one experiment as two JSON
    arrays of arrays, spliced from the stored JSON text without parsing it (the browser does the
    rest: this keeps 5,000 observations to a few tens of milliseconds on the server).

    ``suggestions`` rows: ``[id, created, assignments, metadata]``; ``observations`` rows:
    ``[id, created, failed 0/1, suggestion id, assignments, values, metadata]`` where
    assignments, values and metadata are exactly the wire's objects.
    """
    suggestions = _newest_first(
        session,
        _SUGGESTIONS,
        experiment_id,
        "id created assignments_json metadata_json",
        _SUGGESTIONS.c.closed.is_(False),
    )
    observations = _newest_first(
        session,
        _OBSERVATIONS,
        experiment_id,
        "id created failed suggestion_id assignments_json values_json metadata_json",
    )
    suggestion_rows = ",".join(
        f"[{int(sid)},{int(created)},{assignments},{_json_or_null(meta)}]"
        for sid, created, assignments, meta in suggestions
    )
    observation_rows = ",".join(
        f"[{int(oid)},{int(created)},{1 if failed else 0},"
        f"{'null' if sid is None else int(sid)},{assignments},{values},{_json_or_null(meta)}]"
        for oid, created, failed, sid, assignments, values, meta in observations
    )
    return RowsJson(
        f"[{suggestion_rows}]",
        f"[{observation_rows}]",
        len(suggestions),
        len(observations),
        [(bool(failed), meta) for _, _, failed, _, _, _, meta in observations],
    )


@dataclass(frozen=True)
class RunRowsJson:
    """An AI experiment's live runs as one JSON array, newest first, how many are active, and
    each ended run's (failed, metadata JSON text), newest first, for the cost figures."""

    runs: str
    active_count: int
    ended_metadata: list[tuple[bool, str | None]]


def _id_or_null(value: object) -> str:
    return "null" if value is None else str(int(cast(int, value)))


def experiment_runs_json(session: Session, experiment_id: int) -> RunRowsJson:
    """The experiment's non-archived runs (an AI experiment's), newest first, spliced from the
    stored JSON text like ``experiment_rows_json``. Rows: ``[id, created, state, suggestion id,
    observation id, assignments, values, metadata, name, stopped_at_step, stopping_reason]``;
    ``values`` is the run's object ``{metric: {value, value_stddev}}``; the last two are the
    server's early-stopping answer (null unless it told the run to stop)."""
    runs = _newest_first(
        session,
        _RUNS,
        experiment_id,
        "id created state suggestion_id observation_id assignments_json values_json metadata_json"
        " name stopped_at_step stopping_reason",
    )
    rows = ",".join(
        f"[{int(rid)},{int(created)},{json.dumps(state)},{_id_or_null(sid)},{_id_or_null(oid)},"
        f"{assignments or '{}'},{values or '{}'},{_json_or_null(meta)},{json.dumps(name)},"
        f"{_id_or_null(stop)},{json.dumps(reason)}]"
        for rid, created, state, sid, oid, assignments, values, meta, name, stop, reason in runs
    )
    return RunRowsJson(
        f"[{rows}]",
        sum(1 for run in runs if run[2] == "active"),
        [(run[2] == "failed", run[7]) for run in runs if run[2] != "active"],
    )


@dataclass(frozen=True)
class ProjectRuns:
    """A project's newest runs outside any experiment (at most the limit asked) and how many
    there are."""

    rows: list[Any]
    total: int


def project_runs(session: Session, client_id: int, project: str, limit: int) -> ProjectRuns:
    """The client's non-archived runs of ``project`` outside any experiment, newest first: rows
    ``(id, created, state, name, assignments JSON, values JSON, metadata JSON)``."""
    connection = session.connection()
    live = (
        _RUNS.c.client_id == client_id,
        _RUNS.c.project == project,
        _RUNS.c.experiment_id.is_(None),
        _RUNS.c.deleted.is_(False),
    )
    total = connection.execute(select(func.count()).select_from(_RUNS).where(*live)).scalar_one()
    rows = connection.execute(
        select(
            _RUNS.c.id,
            _RUNS.c.created,
            _RUNS.c.state,
            _RUNS.c.name,
            _RUNS.c.assignments_json,
            _RUNS.c.values_json,
            _RUNS.c.metadata_json,
        )
        .where(*live)
        .order_by(_RUNS.c.id.desc())
        .limit(limit)
    ).all()
    return ProjectRuns(list(rows), int(total))
