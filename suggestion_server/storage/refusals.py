"""Refused requests (401/403 about the token) counted per reason in the database, so that every
server process adds to the same figures the page's health view shows."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from suggestion_server.storage.database import Store
from suggestion_server.storage.models import AuthRefusal


@dataclass(frozen=True)
class RefusalCount:
    """``count`` requests refused for ``reason``, the last at ``last`` (Unix seconds)."""

    reason: str
    count: int
    last: int


def _add(store: Store, reason: str, now: int) -> bool:
    """One more refusal for an existing reason's row; False when there is no row yet."""
    with store.write_statement() as connection:
        result = connection.execute(
            update(AuthRefusal)
            .where(AuthRefusal.reason == reason)
            .values(count=AuthRefusal.count + 1, last=now)
        )
    return bool(result.rowcount)


def count_refusal(store: Store, reason: str, now: int) -> None:
    """Add one refusal for ``reason`` (an atomic increment, safe across processes)."""
    if _add(store, reason, now):
        return
    try:
        with store.write() as session:
            session.add(AuthRefusal(reason=reason, count=1, last=now))
    except IntegrityError:
        # Another process made the row at the same moment: increment it instead.
        _add(store, reason, now)


def refusal_counts(store: Store) -> list[RefusalCount]:
    """Every reason refused so far, by reason."""
    with store.read() as session:
        rows = session.execute(
            select(AuthRefusal.reason, AuthRefusal.count, AuthRefusal.last).order_by(
                AuthRefusal.reason
            )
        ).all()
    return [RefusalCount(str(r[0]), int(r[1]), int(r[2])) for r in rows]
