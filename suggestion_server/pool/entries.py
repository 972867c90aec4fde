"""The suggestion pool's SQL: take one entry, store a batch, drop stale entries, and the rows the
engine sees as pending (open suggestions and pooled entries, read in one statement).

Pooled entries reach the engine as pending suggestions keyed ``-id`` (``engine_key``), so their
keys never meet a real suggestion id.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, literal_column, select, union_all
from sqlalchemy.orm import Session

from suggestion_server.optimizer.api import ObservationRow, OpenSuggestionRow
from suggestion_server.pool.sizing import POOL_MAX
from suggestion_server.storage.models import (
    Observation,
    PooledSuggestion,
    QueuedSuggestion,
    Suggestion,
)
from suggestion_server.storage.queries import SqlRowSource

# Served in this order: full engine proposals, the engine's batch picks, random padding.
ENGINE_RANK = 0
BATCH_RANK = 1
PADDING_RANK = 2
SOURCE_OF_RANK = {ENGINE_RANK: "pool", BATCH_RANK: "batch", PADDING_RANK: "padding"}

_POOL = cast(Table, PooledSuggestion.__table__)
_SUGGESTIONS = cast(Table, Suggestion.__table__)
_OBSERVATIONS = cast(Table, Observation.__table__)

# stale_after never exceeds 2 x POOL_MAX: counting further would not change a verdict.
_NEWER_COUNT_LIMIT = 2 * POOL_MAX
# Engine entries first, oldest first; SKIP LOCKED lets concurrent takers pass each other on
# PostgreSQL (SQLite ignores the clause: its write transactions are serialized anyway).
_NEXT_ENTRY_ID = (
    select(_POOL.c.id)
    .where(_POOL.c.experiment_id == bindparam("eid"))
    .order_by(_POOL.c.rank, _POOL.c.id)
    .limit(1)
    .with_for_update(skip_locked=True)
    .scalar_subquery()
)
# Observations newer than the taken entry's mark (bounded), for its staleness verdict. SQLite
# renders RETURNING without table names; the names still resolve right (innermost table first,
# and only the pool has ``observation_mark``), as the staleness tests check on both databases.
_NEWER = _OBSERVATIONS.alias("newer_observation")
_NEWER_THAN_TAKEN = (
    select(func.count())
    .select_from(
        select(literal_column("1"))
        .select_from(_NEWER)
        .where(
            _NEWER.c.experiment_id == bindparam("eid"),
            _NEWER.c.deleted.is_(False),
            _NEWER.c.id > _POOL.c.observation_mark,
        )
        .correlate(_POOL)
        .limit(_NEWER_COUNT_LIMIT)
        .subquery()
    )
    .correlate(_POOL)
    .scalar_subquery()
)
# One round trip: remove the next entry and return it with its staleness count.
_TAKE_ENTRY = (
    delete(_POOL)
    .where(_POOL.c.id == _NEXT_ENTRY_ID)
    .returning(*_POOL.c, _NEWER_THAN_TAKEN.label("newer"))
)
_NEWER_OBSERVATIONS = select(func.count()).select_from(
    select(literal_column("1"))
    .select_from(_OBSERVATIONS)
    .where(
        _OBSERVATIONS.c.experiment_id == bindparam("eid"),
        _OBSERVATIONS.c.deleted.is_(False),
        _OBSERVATIONS.c.id > bindparam("mark"),
    )
    .limit(bindparam("limit"))
    .subquery()
)
_OPEN_COUNT = select(func.count()).where(
    _SUGGESTIONS.c.experiment_id == bindparam("eid"),
    _SUGGESTIONS.c.deleted.is_(False),
    _SUGGESTIONS.c.closed.is_(False),
)
_LAST_OBSERVATION_ID = select(func.max(_OBSERVATIONS.c.id)).where(
    _OBSERVATIONS.c.experiment_id == bindparam("eid")
)
# One statement, so one snapshot: an entry handed out meanwhile is seen once, not zero times.
_PENDING = union_all(
    select(_SUGGESTIONS.c.id, _SUGGESTIONS.c.assignments_json).where(
        _SUGGESTIONS.c.experiment_id == bindparam("eid"),
        _SUGGESTIONS.c.deleted.is_(False),
        _SUGGESTIONS.c.closed.is_(False),
    ),
    select(-_POOL.c.id, _POOL.c.assignments_json).where(_POOL.c.experiment_id == bindparam("eid")),
)


def engine_key(pool_id: int) -> int:
    """The id the engine knows a pooled entry by."""
    return -pool_id


def new_pool_id() -> int:
    """A fresh entry id (random, so it is known before the row is stored)."""
    return secrets.randbelow(2**62) + 1


@dataclass(frozen=True)
class PoolEntry:
    """A computed entry about to be stored."""

    id: int
    assignments_json: str
    rank: int


@dataclass
class PoolState:
    """What the pool holds at the start of an engine run."""

    total: int = 0
    fresh: int = 0
    fresh_engine: int = 0
    stale_marks: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Freshness:
    """What an entry was computed from: stale once ``version`` changed or ``stale_after``
    observations newer than ``observation_mark`` exist."""

    version: int
    observation_mark: int
    stale_after: int


def take_entry(session: Session, experiment_id: int, version: int) -> Any | None:
    """Remove and return the next fresh entry (a row with ``assignments_json`` and ``rank``), or
    None. A stale entry met on the way is dropped with every entry at least as old."""
    for _ in range(3):
        row = session.connection().execute(_TAKE_ENTRY, {"eid": experiment_id}).first()
        if row is None:
            return None
        if row.version == version and int(row.newer or 0) < int(row.stale_after):
            return row
        drop_stale(session, experiment_id, version, row.observation_mark)
    return None


def drop_stale(session: Session, experiment_id: int, version: int, mark: int) -> None:
    """Delete entries of another version or computed at or before observation ``mark``
    (skipping entries another transaction is handing out right now)."""
    doomed = (
        select(_POOL.c.id)
        .where(
            _POOL.c.experiment_id == experiment_id,
            (_POOL.c.version != version) | (_POOL.c.observation_mark <= mark),
        )
        .with_for_update(skip_locked=True)
    )
    session.connection().execute(delete(_POOL).where(_POOL.c.id.in_(doomed.scalar_subquery())))


def drop_pool(session: Session, experiment_id: int) -> None:
    """Delete every entry of the experiment (demand is low again, or the experiment is gone)."""
    session.connection().execute(delete(_POOL).where(_POOL.c.experiment_id == experiment_id))


def store_entries(
    session: Session,
    experiment_id: int,
    entries: Sequence[PoolEntry],
    freshness: Freshness,
    now: int,
) -> None:
    """Insert computed entries."""
    if not entries:
        return
    session.connection().execute(
        insert(_POOL),
        [
            {
                "id": entry.id,
                "experiment_id": experiment_id,
                "assignments_json": entry.assignments_json,
                "rank": entry.rank,
                "version": freshness.version,
                "observation_mark": freshness.observation_mark,
                "stale_after": freshness.stale_after,
                "created": now,
            }
            for entry in entries
        ],
    )


def open_count(session: Session, experiment_id: int) -> int:
    """How many open suggestions the experiment has."""
    return int(session.connection().execute(_OPEN_COUNT, {"eid": experiment_id}).scalar() or 0)


def queued_assignments(session: Session, experiment_id: int) -> list[dict[str, Any]]:
    """The assignments users queued for the experiment (served before any pooled entry)."""
    query = select(QueuedSuggestion.assignments_json).where(
        QueuedSuggestion.experiment_id == experiment_id
    )
    return [json.loads(text) for text in session.execute(query).scalars()]


def last_observation_id(session: Session, experiment_id: int) -> int:
    """The experiment's newest observation id (0 if none): the mark new entries carry."""
    value = session.connection().execute(_LAST_OBSERVATION_ID, {"eid": experiment_id}).scalar()
    return int(value or 0)


class BatchRowSource:
    """The engine's rows for one engine run (one proposal or a batch of them).

    Pending suggestions are the open ones plus the pooled entries (``-id``), read once, plus
    every proposal of this run so far (``add_pending``): the engine sees its own batch as
    running trials without a database round trip per proposal. Observations are read once too
    (again only if the engine asks from further back). The reads happen in ``session``, which
    the caller opened after taking the experiment's engine lock, so every earlier engine run's
    points are committed and visible.
    """

    def __init__(self, session: Session, experiment_id: int, metric_names: dict[str, str]):
        self._session = session
        self._experiment_id = experiment_id
        self._rows = SqlRowSource(session, experiment_id, metric_names)
        self._observations: tuple[int, Sequence[ObservationRow]] | None = None
        self._pending: list[OpenSuggestionRow] | None = None

    def observations_after(
        self, observation_id: int, known: Container[int] = ()
    ) -> Sequence[ObservationRow]:
        """Non-deleted observations with id > ``observation_id`` (read once per run)."""
        if self._observations is None or observation_id < self._observations[0]:
            self._observations = (
                observation_id,
                self._rows.observations_after(observation_id, known),
            )
        return [row for row in self._observations[1] if row.id > observation_id]

    def open_suggestions(self) -> Sequence[OpenSuggestionRow]:
        """Open suggestions, pooled entries and this run's proposals."""
        return list(self.pending())

    def pending(self) -> list[OpenSuggestionRow]:
        """The pending rows (the list itself: ``add_pending`` appends to it)."""
        if self._pending is None:
            rows = self._session.connection().execute(_PENDING, {"eid": self._experiment_id})
            self._pending = [
                OpenSuggestionRow(id=int(key), assignments=json.loads(assignments))
                for key, assignments in rows
            ]
        return self._pending

    def add_pending(self, key: int, assignments: dict[str, Any]) -> None:
        """Record a proposal of this run as pending for the next ones."""
        self.pending().append(OpenSuggestionRow(id=key, assignments=assignments))


def pool_freshness(session: Session, experiment_id: int, version: int) -> PoolState:
    """How many entries the pool holds, how many are fresh (and the engine's), and the
    observation marks of its stale batches."""
    groups = session.connection().execute(
        select(
            _POOL.c.version,
            _POOL.c.observation_mark,
            _POOL.c.stale_after,
            _POOL.c.rank,
            func.count(),
        )
        .where(_POOL.c.experiment_id == experiment_id)
        .group_by(_POOL.c.version, _POOL.c.observation_mark, _POOL.c.stale_after, _POOL.c.rank)
    )
    state = PoolState()
    for group_version, mark, stale_after, rank, count in groups.all():
        state.total += int(count)
        params = {"eid": experiment_id, "mark": mark, "limit": stale_after}
        newer = session.connection().execute(_NEWER_OBSERVATIONS, params).scalar()
        if group_version == version and int(newer or 0) < int(stale_after):
            state.fresh += int(count)
            state.fresh_engine += int(count) if rank == ENGINE_RANK else 0
        elif int(mark) not in state.stale_marks:
            state.stale_marks.append(int(mark))
    return state
