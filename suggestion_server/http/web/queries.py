"""Read-only queries for the web page: tokens by id, and one experiment's rows as JSON arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from suggestion_server.storage.models import Observation, Suggestion, Token

_SUGGESTIONS = cast(Table, Suggestion.__table__)
_OBSERVATIONS = cast(Table, Observation.__table__)


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
    connection = session.connection()
    suggestions = connection.execute(
        select(
            _SUGGESTIONS.c.id,
            _SUGGESTIONS.c.created,
            _SUGGESTIONS.c.assignments_json,
            _SUGGESTIONS.c.metadata_json,
        )
        .where(
            _SUGGESTIONS.c.experiment_id == experiment_id,
            _SUGGESTIONS.c.deleted.is_(False),
            _SUGGESTIONS.c.closed.is_(False),
        )
        .order_by(_SUGGESTIONS.c.id.desc())
    ).all()
    observations = connection.execute(
        select(
            _OBSERVATIONS.c.id,
            _OBSERVATIONS.c.created,
            _OBSERVATIONS.c.failed,
            _OBSERVATIONS.c.suggestion_id,
            _OBSERVATIONS.c.assignments_json,
            _OBSERVATIONS.c.values_json,
            _OBSERVATIONS.c.metadata_json,
        )
        .where(_OBSERVATIONS.c.experiment_id == experiment_id, _OBSERVATIONS.c.deleted.is_(False))
        .order_by(_OBSERVATIONS.c.id.desc())
    ).all()
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
