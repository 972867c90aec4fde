"""The page's health view: how many requests the server refused about their token, per reason
(suggestion_server/http/refusal_log.py), for every server process that shares the database."""

from __future__ import annotations

from typing import Any

from suggestion_server.http.refusal_log import NO_TOKEN
from suggestion_server.http.token_scope import WRONG_SCOPE
from suggestion_server.http.web.project_page import utc_text
from suggestion_server.services.context import ServerContext
from suggestion_server.storage.refusals import refusal_counts
from suggestion_server.storage.tokens import REVOKED, ROTATED_OUT, UNKNOWN

# Every reason is listed (with 0 until it happens), in this order, with what it means.
REASONS: tuple[tuple[str, str], ...] = (
    (NO_TOKEN, "no token sent (401)"),
    (UNKNOWN, "a token that was never issued"),
    (REVOKED, "a revoked token"),
    (ROTATED_OUT, "a rotated token's previous value after its grace"),
    (WRONG_SCOPE, "an experiment-scoped token outside its experiment"),
)


def refusals_json(ctx: ServerContext) -> dict[str, Any]:
    """``{"refusals": [{"reason", "meaning", "count", "last"}], "total"}``; ``last`` is the
    Unix time of the latest refusal for the reason (null: none yet)."""
    counted = {row.reason: row for row in refusal_counts(ctx.store)}
    rows: list[dict[str, Any]] = []
    for reason, meaning in REASONS:
        found = counted.pop(reason, None)
        rows.append(
            _row(reason, meaning, found.count if found else 0, found.last if found else None)
        )
    for reason, found in sorted(counted.items()):  # a reason this version does not name
        rows.append(_row(reason, reason, found.count, found.last))
    return {"refusals": rows, "total": sum(row["count"] for row in rows)}


def _row(reason: str, meaning: str, count: int, last: int | None) -> dict[str, Any]:
    return {
        "reason": reason,
        "meaning": meaning,
        "count": count,
        "last": last,
        "last_text": "" if last is None else utc_text(last),
    }
