"""The shared fleet-spend figure: one agent per experiment refreshes it from EC2 at most once
a minute, every other agent reads it (docs/api.md, "Fleet spend").

Before, every agent paged ``ec2:DescribeInstances`` over the whole experiment before each
suggestion: ~125 calls/s at 1,000 agents, six times EC2's refill rate. The claim is a
conditional UPDATE, so it holds across server processes on one database: at most one agent
per ``CLAIM_S`` is told to refresh, and only once the figure is older than ``REFRESH_AFTER_S``.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import CursorResult, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from suggestion_server.services.context import ServerContext
from suggestion_server.storage.models import FleetSpend
from suggestion_server.storage.queries import experiment_row_for_client
from suggestion_server.wire.errors import bad_request
from suggestion_server.wire.fleet_spend import FleetSpendReportIn

log = logging.getLogger("suggestion_server.fleet_spend")

REFRESH_AFTER_S = 60.0  # a figure younger than this is used as it is (extrapolated)
CLAIM_S = 30.0  # how long a granted claim keeps other agents from refreshing


def _ensure_row(session: Session, experiment_id: int) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgres_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(FleetSpend)
        .values(experiment_id=experiment_id, usd_per_s=0.0, seconds=0.0, instances=0)
        .values(claimed_until=0.0)
        .on_conflict_do_nothing(index_elements=["experiment_id"])
    )


def _json(experiment_id: int, row: FleetSpend | None) -> dict[str, Any]:
    return {
        "object": "fleet_spend",
        "experiment": str(experiment_id),
        "usd": row.usd if row else None,
        "usd_per_s": row.usd_per_s if row else 0.0,
        "seconds": row.seconds if row else 0.0,
        "instances": row.instances if row else 0,
        "measured_at": row.measured_at if row else None,
        "measured_by": row.measured_by if row else None,
        "refresh_after_s": REFRESH_AFTER_S,
    }


def fetch_fleet_spend(ctx: ServerContext, client_id: int, experiment_id: int) -> dict[str, Any]:
    """The experiment's shared figure (all zero with ``measured_at`` null before the first)."""
    with ctx.store.read() as session:
        experiment_row_for_client(session, client_id, experiment_id)
        return _json(experiment_id, session.get(FleetSpend, experiment_id))


def claim_refresh(
    ctx: ServerContext, client_id: int, experiment_id: int, instance_id: str
) -> dict[str, Any]:
    """Grant ``instance_id`` the refresh when the figure is stale and nobody holds the claim."""
    now = ctx.clock()
    with ctx.store.write() as session:
        experiment_row_for_client(session, client_id, experiment_id)
        _ensure_row(session, experiment_id)
        stale = FleetSpend.measured_at.is_(None) | (FleetSpend.measured_at <= now - REFRESH_AFTER_S)
        result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            update(FleetSpend)
            .where(FleetSpend.experiment_id == experiment_id)
            .where(FleetSpend.claimed_until <= now)
            .where(stale)
            .values(claimed_by=instance_id, claimed_until=now + CLAIM_S)
            .execution_options(synchronize_session=False)
        )
        granted = result.rowcount
        row = session.get(FleetSpend, experiment_id, populate_existing=True)
        if row is None:  # inserted above in this transaction
            raise RuntimeError(f"fleet_spend row of experiment {experiment_id} vanished")
        if granted:
            log.info("fleet spend claim experiment=%s instance=%s", experiment_id, instance_id)
        return {
            "object": "fleet_spend_claim",
            "granted": bool(granted),
            "claimed_by": row.claimed_by,
            "claimed_until": row.claimed_until,
            "fleet_spend": _json(experiment_id, row),
        }


def report_fleet_spend(
    ctx: ServerContext, client_id: int, experiment_id: int, body: FleetSpendReportIn
) -> dict[str, Any]:
    """Store a measured figure unless a newer one is stored; the reporter's claim ends."""
    if body.measured_at > ctx.clock() + 300:
        raise bad_request(
            f"Invalid value for measured_at: {body.measured_at} - expected unix seconds no later "
            "than the server's clock (plus 5 minutes of skew)"
        )
    with ctx.store.write() as session:
        experiment_row_for_client(session, client_id, experiment_id)
        _ensure_row(session, experiment_id)
        newer = FleetSpend.measured_at.is_(None) | (FleetSpend.measured_at < body.measured_at)
        session.execute(
            update(FleetSpend)
            .where(FleetSpend.experiment_id == experiment_id)
            .where(newer)
            .values(
                usd=body.usd,
                usd_per_s=body.usd_per_s,
                seconds=body.seconds,
                instances=body.instances,
                measured_at=body.measured_at,
                measured_by=body.measured_by,
            )
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(FleetSpend)
            .where(FleetSpend.experiment_id == experiment_id)
            .where(FleetSpend.claimed_by == body.measured_by)
            .values(claimed_by=None, claimed_until=0.0)
            .execution_options(synchronize_session=False)
        )
        return _json(experiment_id, session.get(FleetSpend, experiment_id, populate_existing=True))
