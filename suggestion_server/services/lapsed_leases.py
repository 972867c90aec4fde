"""Extension for the agents' orphan scan: list only open suggestions an agent might adopt.

``GET /v1/experiments/{id}/suggestions?state=open&lease_expired_by=T`` returns the open
suggestions that carry an ``instance_id`` and either an ``interrupted_at`` or a
``lease_expires_at`` that is not a number after T (missing, a string, or <= T). Without it every
agent lists every open suggestion to find the few orphans: N agents x N rows. The filter is a
superset of what the agent adopts (it re-checks each row), so rounding or odd metadata can only
make the answer longer, never hide an orphan. Responses carry ``X-Optfleet-Lease-Filter:
applied`` so an agent can tell this server from one that ignored the parameter.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import ColumnElement, text
from sqlalchemy.orm import Session

from suggestion_server.services.context import ServerContext
from suggestion_server.services.render import pagination_json, suggestion_json
from suggestion_server.storage.models import Suggestion
from suggestion_server.storage.queries import experiment_row_for_client, page_of
from suggestion_server.wire.errors import bad_request
from suggestion_server.wire.paging import PageRequest

PARAMETER = "lease_expired_by"
HEADER = "X-Optfleet-Lease-Filter"

_TABLE = Suggestion.__tablename__
# json_type: NULL when the key is missing, 'null' for a JSON null.
_SQLITE = text(
    f"COALESCE(json_type({_TABLE}.metadata_json, '$.instance_id'), 'null') <> 'null' AND ("
    f"COALESCE(json_type({_TABLE}.metadata_json, '$.interrupted_at'), 'null') <> 'null' OR "
    f"CASE WHEN json_type({_TABLE}.metadata_json, '$.lease_expires_at') IN ('integer', 'real') "
    f"THEN json_extract({_TABLE}.metadata_json, '$.lease_expires_at') <= :lapsed_by "
    "ELSE 1 END)"
)
_META = f"CAST({_TABLE}.metadata_json AS jsonb)"
# CASE, not OR, so that a string lease is never cast to a number.
_POSTGRES = text(
    f"COALESCE(jsonb_typeof({_META} -> 'instance_id'), 'null') <> 'null' AND ("
    f"COALESCE(jsonb_typeof({_META} -> 'interrupted_at'), 'null') <> 'null' OR "
    f"CASE WHEN jsonb_typeof({_META} -> 'lease_expires_at') = 'number' "
    f"THEN CAST({_META} ->> 'lease_expires_at' AS double precision) <= :lapsed_by "
    "ELSE true END)"
)


def parse_lapsed_by(value: str | None) -> float | None:
    """The ``lease_expired_by`` query value as unix seconds; a 400 naming it when malformed."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise bad_request(
            f"Invalid value for {PARAMETER}: {value!r} - expected unix seconds (a number >= 0)"
        )
    return number


def check_combination(query_keys: list[str], state: str | None) -> None:
    """Only ``state=open``, paging and ``fields`` go with the filter (a 400 names the rest)."""
    clash = sorted(
        k for k in set(query_keys) if k in ("deleted", "id") or k.startswith("metadata.")
    )
    if state != "open" or clash:
        raise bad_request(
            f"{PARAMETER} needs state=open and cannot be combined with "
            f"{', '.join(clash) or 'other filters'}"
        )


def lapsed_condition(session: Session, lapsed_by: float) -> ColumnElement[bool]:
    """The SQL condition for this database's JSON functions."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    clause = _SQLITE if sqlite else _POSTGRES
    return clause.bindparams(lapsed_by=lapsed_by)  # type: ignore[return-value]


def list_lapsed_open_suggestions(
    ctx: ServerContext, client_id: int, experiment_id: int, req: PageRequest, lapsed_by: float
) -> dict[str, Any]:
    """A page of the experiment's open suggestions that an agent might adopt, newest first."""
    with ctx.store.read() as session:
        experiment_row_for_client(session, client_id, experiment_id)
        conditions: list[ColumnElement[bool]] = [
            Suggestion.experiment_id == experiment_id,
            Suggestion.deleted.is_(False),
            Suggestion.closed.is_(False),
            lapsed_condition(session, lapsed_by),
        ]
        page = page_of(session, Suggestion, conditions, req)
        return pagination_json(page, [suggestion_json(s) for s in page.rows])
