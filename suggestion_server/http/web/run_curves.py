"""The experiment page's "value vs step" data: one page of training runs with their checkpoints.

Bounded so the page stays fast however many runs an experiment has: at most ``MAX_RUNS`` runs a
request (newest first, paged by run id) and each run's stored checkpoints (at most the monitor's
``max_checkpoints``, 200). Checkpoint values are spliced from the stored JSON text unparsed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from suggestion_server.storage.models import Checkpoint, TrainingRun
from suggestion_server.wire.errors import bad_request
from suggestion_server.wire.schemas import MAX_ID

DEFAULT_RUNS = 50
MAX_RUNS = 100
_RUNS = cast(Table, TrainingRun.__table__)
_CHECKPOINTS = cast(Table, Checkpoint.__table__)


@dataclass(frozen=True)
class RunsPage:
    """Which runs: at most ``limit``, with ids below ``before`` (None: the newest)."""

    limit: int
    before: int | None


def _whole_number(name: str, text: str | None, low: int, high: int) -> int | None:
    if text is None:
        return None
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        raise bad_request(
            f"Invalid {name}: {text!r} - expected a whole number from {low} to {high}"
        )
    return int(text)


def runs_page(limit: str | None, before: str | None) -> RunsPage:
    """The query's ``limit`` (1 to ``MAX_RUNS``) and ``before`` (a run id); 400 naming the field."""
    chosen = _whole_number("limit", limit, 1, MAX_RUNS)
    return RunsPage(
        DEFAULT_RUNS if chosen is None else chosen, _whole_number("before", before, 1, MAX_ID)
    )


def _int_or_null(value: object) -> str:
    return "null" if value is None else str(int(cast(int, value)))


def run_curves_json(session: Session, experiment_id: int, page: RunsPage) -> str:
    """``{"runs": [...], "total", "next_before"}``: the page of live runs, newest first, each
    ``{id, suggestion, observation, state, stopped_at_step, stopping_reason, checkpoints}`` with
    ``checkpoints`` ``[[step, values], ...]`` in step order (``values`` the wire's list of metric
    evaluations); ``next_before`` is the ``before`` of the next (older) page, null at the end."""
    connection = session.connection()
    live = (_RUNS.c.experiment_id == experiment_id, _RUNS.c.deleted.is_(False))
    total = connection.execute(select(func.count()).select_from(_RUNS).where(*live)).scalar_one()
    query = select(
        _RUNS.c.id,
        _RUNS.c.suggestion_id,
        _RUNS.c.observation_id,
        _RUNS.c.state,
        _RUNS.c.stopped_at_step,
        _RUNS.c.stopping_reason,
    ).where(*live)
    if page.before is not None:
        query = query.where(_RUNS.c.id < page.before)
    runs = connection.execute(query.order_by(_RUNS.c.id.desc()).limit(page.limit + 1)).all()
    more = len(runs) > page.limit
    runs = runs[: page.limit]
    curves: dict[int, list[str]] = {int(run[0]): [] for run in runs}
    if curves:
        rows = connection.execute(
            select(_CHECKPOINTS.c.training_run_id, _CHECKPOINTS.c.step, _CHECKPOINTS.c.values_json)
            .where(_CHECKPOINTS.c.training_run_id.in_(list(curves)))
            .order_by(_CHECKPOINTS.c.training_run_id, _CHECKPOINTS.c.step)
        )
        for run_id, step, values in rows:
            curves[int(run_id)].append(f"[{int(step)},{values}]")
    items = ",".join(
        f'{{"id":{int(rid)},"suggestion":{_int_or_null(sid)},"observation":{_int_or_null(oid)},'
        f'"state":{json.dumps(state)},"stopped_at_step":{_int_or_null(stopped_at)},'
        f'"stopping_reason":{json.dumps(reason)},"checkpoints":[{",".join(curves[int(rid)])}]}}'
        for rid, sid, oid, state, stopped_at, reason in runs
    )
    next_before = int(runs[-1][0]) if more else None
    return f'{{"runs":[{items}],"total":{int(total)},"next_before":{_int_or_null(next_before)}}}'
