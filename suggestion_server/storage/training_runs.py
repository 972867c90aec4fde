"""Queries over training runs, their checkpoints and the early-stopping rung values."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from suggestion_server.storage.models import Checkpoint, Experiment, RungValue, TrainingRun
from suggestion_server.storage.queries import dumps
from suggestion_server.wire.errors import not_found
from suggestion_server.wire.schemas import MAX_ID

# pg_advisory_xact_lock(int4, int4): a namespace of our own (the engine lock uses 0x6F70), then
# the experiment id wrapped to int4 (two experiments sharing a key only wait for each other).
_PG_DECISION_NAMESPACE = 0x6F65
_PG_DECISION_LOCK = text("SELECT pg_advisory_xact_lock(:ns, CAST(:key AS integer))")
_TRAINING_RUNS = cast(Table, TrainingRun.__table__)
_CLOSE_RUN = (
    update(_TRAINING_RUNS)
    .where(_TRAINING_RUNS.c.id == bindparam("rid"), _TRAINING_RUNS.c.observation_id.is_(None))
    .values(
        observation_id=bindparam("oid"),
        state=bindparam("state"),
        values_json=bindparam("values"),
        completed=func.coalesce(_TRAINING_RUNS.c.completed, bindparam("now")),
        updated=bindparam("now"),
    )
)


def run_for_client(
    session: Session,
    client_id: int,
    run_id: int,
    *,
    experiment_id: int | None = None,
    lock: bool = False,
) -> TrainingRun:
    """The client's non-deleted run (of ``experiment_id`` when given), or 404. ``lock`` takes
    its row lock (``SELECT … FOR UPDATE`` on PostgreSQL): checkpoints of one run are serialized
    by it."""
    if not 0 < run_id <= MAX_ID:
        raise not_found()
    query = select(TrainingRun).where(
        TrainingRun.id == run_id,
        TrainingRun.client_id == client_id,
        TrainingRun.deleted.is_(False),
    )
    if experiment_id is not None:
        query = query.where(TrainingRun.experiment_id == experiment_id)
    if lock:
        query = query.with_for_update()
    run = session.scalars(query).first()
    if run is None:
        raise not_found()
    return run


def run_of_suggestion(session: Session, suggestion_id: int) -> TrainingRun | None:
    """The run made for a suggestion (deleted or not), if any."""
    return session.scalars(
        select(TrainingRun).where(TrainingRun.suggestion_id == suggestion_id)
    ).first()


def experiment_of_run(session: Session, run: TrainingRun) -> Experiment | None:
    """The run's experiment (None for a run outside any experiment)."""
    if run.experiment_id is None:
        return None
    return session.get(Experiment, run.experiment_id)


def checkpoint_at_step(session: Session, run_id: int, step: int) -> Checkpoint | None:
    """The run's checkpoint at ``step``, if one was stored."""
    return session.scalars(
        select(Checkpoint).where(Checkpoint.training_run_id == run_id, Checkpoint.step == step)
    ).first()


def checkpoint_of_run(session: Session, run_id: int, checkpoint_id: int) -> Checkpoint:
    """One checkpoint of the run, or 404."""
    if not 0 < checkpoint_id <= MAX_ID:
        raise not_found()
    checkpoint = session.scalars(
        select(Checkpoint).where(
            Checkpoint.id == checkpoint_id, Checkpoint.training_run_id == run_id
        )
    ).first()
    if checkpoint is None:
        raise not_found()
    return checkpoint


def metric_curves(
    session: Session, run_id: int, metrics: Iterable[str | None]
) -> dict[str | None, list[float]]:
    """Each metric's values over the run's stored checkpoints, in step order (a checkpoint
    without the metric adds nothing to its curve). At most ``max_checkpoints`` rows."""
    wanted = set(metrics)
    curves: dict[str | None, list[float]] = {name: [] for name in wanted}
    rows = session.scalars(
        select(Checkpoint.values_json)
        .where(Checkpoint.training_run_id == run_id)
        .order_by(Checkpoint.step)
    )
    for values_json in rows:
        for entry in json.loads(values_json):
            if entry["name"] in wanted:
                curves[entry["name"]].append(float(entry["value"]))
    return curves


def lock_stopping_decisions(session: Session, experiment_id: int) -> None:
    """Serialize the experiment's rung records and decisions until the transaction ends.

    PostgreSQL: a transaction advisory lock, taken after the run's row lock and before nothing
    else, so it cannot deadlock with observation creation (experiment row, then run row). The
    rung value inserted next references the experiment (a key-share lock on its row), which
    the experiment lock (FOR NO KEY UPDATE, queries.py) does not block.
    SQLite: write transactions already run one at a time (``BEGIN IMMEDIATE``).
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    key = (experiment_id + 2**31) % 2**32 - 2**31
    session.execute(_PG_DECISION_LOCK, {"ns": _PG_DECISION_NAMESPACE, "key": key})


def rung_values(session: Session, experiment_id: int, rung_step: int) -> list[float]:
    """The values recorded at a rung so far, in the order they were recorded."""
    return list(
        session.scalars(
            select(RungValue.value)
            .where(RungValue.experiment_id == experiment_id, RungValue.rung_step == rung_step)
            .order_by(RungValue.id)
        )
    )


def record_rung_value(
    session: Session, experiment_id: int, rung_step: int, run_id: int, value: float
) -> None:
    """Store a run's value at a rung (once per run and rung: the table's unique key)."""
    session.add(
        RungValue(
            experiment_id=experiment_id, rung_step=rung_step, training_run_id=run_id, value=value
        )
    )
    session.flush()


def close_run(
    session: Session, run_id: int, observation_id: int, failed: bool, values_json: str, now: int
) -> None:
    """An observation for the run's suggestion ends the run (once): state ``completed`` or
    ``failed``, ``values_json`` its values map, ``completed`` kept if a PUT set it before."""
    session.connection().execute(
        _CLOSE_RUN,
        {
            "rid": run_id,
            "oid": observation_id,
            "state": "failed" if failed else "completed",
            "values": values_json,
            "now": now,
        },
    )


def run_values_json(values: list[dict[str, Any]]) -> str:
    """An observation's ``values`` list as a run's ``values`` map (the unnamed metric under "")."""
    return dumps({entry["name"] or "": entry for entry in values}) or "{}"
