"""Refused requests (401/403 about the token) counted per reason in the database, so that every
server process adds to the same figures the page's health view shows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import case, select, update
from sqlalchemy.exc import IntegrityError

from suggestion_server.storage.database import Store
from suggestion_server.storage.models import AuthRefusal


@dataclass(frozen=True)
class RefusalCount:
    """``count`` requests refused for ``reason``, the last at ``last`` (Unix seconds)."""

    reason: str
    count: int
    last: int


def _add(store: Store, reason: str, count: int, last: int) -> bool:
    """``count`` more refusals for an existing reason's row; False when there is no row yet."""
    with store.write_statement() as connection:
        result = connection.execute(
            update(AuthRefusal)
            .where(AuthRefusal.reason == reason)
            .values(
                count=AuthRefusal.count + count,
                # The later of the two (SQLite's max and PostgreSQL's greatest, portably).
                last=case((AuthRefusal.last > last, AuthRefusal.last), else_=last),
            )
        )
    return bool(result.rowcount)


def add_refusals(store: Store, counts: Mapping[str, int], last: Mapping[str, int]) -> None:
    """Add ``counts[reason]`` refusals per reason, the latest at ``last[reason]`` (atomic
    increments, safe across processes)."""
    for reason, count in sorted(counts.items()):
        if _add(store, reason, count, last[reason]):
            continue
        try:
            with store.write() as session:
                session.add(AuthRefusal(reason=reason, count=count, last=last[reason]))
        except IntegrityError:
            # Another process made the row at the same moment: add to it instead.
            _add(store, reason, count, last[reason])


def refusal_counts(store: Store) -> list[RefusalCount]:
    """Every reason refused so far, by reason."""
    with store.read() as session:
        rows = session.execute(
            select(AuthRefusal.reason, AuthRefusal.count, AuthRefusal.last).order_by(
                AuthRefusal.reason
            )
        ).all()
    return [RefusalCount(str(r[0]), int(r[1]), int(r[2])) for r in rows]
