"""Keeping ``experiment.loop()`` within its budget (docs/api.md, "How many runs a budget buys").

The official client's loop asks ``GET /aiexperiments/{id}`` whether the budget is spent, then
creates a run. Many workers asking at once all read "1 left" and all create: the open-source
server overshoots by up to workers - 1. Here each answer that shows budget left also reserves
one run of it, and a run created takes a reservation. When the remaining budget is all
reserved, the answer waits (at most about ``RESERVATION_TTL_S``) until the reserved runs are
created (the budget is spent: the loop ends) or lapse (reserved anew). A worker is never
refused: answers stay 200, as a 4xx would crash the user's loop.

A reservation's *holder* is the client's connection (peer address and port): the loop's GET and
its run's POST travel on one kept-alive connection, so a create takes its own reservation, and a
connection's next GET replaces the one it held (``sigopt.get_experiment(id)`` before
``loop()`` reserves one run, not two). A create without one takes the reservation that lapses
first; so the count stays right even when connections are shared. Unused, a reservation lapses
after ``RESERVATION_TTL_S`` (a refresh from elsewhere, a loop broken off, a dead worker).

Reservations are rows (table ``run_reservations``), decided under the experiment's row lock,
which run creation takes too, so several server processes share them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread

from suggestion_server.services.ai_experiments import ai_experiment_json
from suggestion_server.services.context import ServerContext
from suggestion_server.storage.runs import (
    hold_run_reservation,
    live_reservation_holders,
    lock_experiment_for_runs,
    run_counts,
)
from suggestion_server.wire.errors import not_found

# The client creates its run right after the answer, but under load its POST may queue behind
# many requests (200 workers on PostgreSQL: ~1 s each); a reservation unused this long lapses.
RESERVATION_TTL_S = 30.0
FIRST_POLL_S = 0.02
MAX_POLL_S = 0.4


@dataclass(frozen=True)
class LoopAnswer:
    """The experiment object, and whether it may be answered now (False: all of the remaining
    budget is reserved by other answers; ask again shortly)."""

    payload: dict[str, Any]
    settled: bool


def fetch_reserving_a_run(
    ctx: ServerContext, client_id: int, experiment_id: int, holder: str | None
) -> LoopAnswer:
    """The AI experiment, reserving one run for ``holder`` when budget remains (one short
    write)."""
    with ctx.store.write() as session:
        row = lock_experiment_for_runs(session, client_id, experiment_id)
        if not row.runs_only:
            raise not_found(f"Experiment {experiment_id} is not an AI experiment")
        counts = run_counts(session, [row.id])[row.id]
        settled = True
        budget = row.observation_budget
        if budget is not None and row.state != "deleted" and counts.total < budget:
            now = ctx.clock()
            holders = live_reservation_holders(session, row.id, now)
            others = len(holders) - (1 if holder is not None and holder in holders else 0)
            if others < budget - counts.total:
                hold_run_reservation(session, row.id, holder, now + RESERVATION_TTL_S)
            else:
                settled = False
        return LoopAnswer(ai_experiment_json(row, counts), settled)


async def fetch_for_next_run(
    ctx: ServerContext, client_id: int, experiment_id: int, holder: str | None
) -> dict[str, Any]:
    """``GET /aiexperiments/{id}``: the experiment, once a run is reserved for the caller or
    the budget is spent (waiting at most about ``RESERVATION_TTL_S``; then the answer shows
    what remains, and a run created on it may overshoot by one)."""
    deadline = time.monotonic() + RESERVATION_TTL_S + 1.0
    poll = FIRST_POLL_S
    while True:
        answer = await anyio.to_thread.run_sync(
            fetch_reserving_a_run, ctx, client_id, experiment_id, holder
        )
        if answer.settled or time.monotonic() >= deadline:
            return answer.payload
        await anyio.sleep(poll)
        poll = min(poll * 2, MAX_POLL_S)
