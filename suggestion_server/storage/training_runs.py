"""Queries over training runs, their checkpoints and the early-stopping rung values."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
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


# The checkpoint write in plain SQL on the driver's connection (services/checkpoints.py): the
# ORM's statement building, identity map and flush cost several times the database work of a
# checkpoint, which is the most frequent write of a fleet that reports progress. Statements
# are written with ``:name`` parameters and translated once for psycopg.


@dataclass
class RunForCheckpoint:
    """What a checkpoint's decision reads of its run (locked) and of the run's experiment
    (``metrics_json`` None for a run outside any experiment)."""

    id: int
    client_id: int
    experiment_id: int | None
    checkpoint_count: int
    last_step: int | None
    observation_id: int | None
    rung_step: int | None
    stopping_reason: str | None
    best_value: float | None
    best_checkpoint_id: int | None
    stopped_at_step: int | None
    experiment_state: str | None
    metrics_json: str | None
    monitor_json: str | None


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint row as stored (its JSON columns unparsed)."""

    id: int
    training_run_id: int
    created: int
    step: int
    values_json: str
    metadata_json: str | None
    should_stop: bool
    stopping_reasons_json: str


_RUNS_FOR_CHECKPOINTS = """
SELECT r.id, r.client_id, r.experiment_id, r.checkpoint_count, r.last_step, r.observation_id,
       r.rung_step, r.stopping_reason, r.best_value, r.best_checkpoint_id, r.stopped_at_step,
       e.state, e.metrics_json, e.training_monitor_json
FROM training_runs r LEFT JOIN experiments e ON e.id = r.experiment_id
WHERE r.deleted = :no AND """
_CHECKPOINT_AT_STEP = (
    "SELECT id, training_run_id, created, step, values_json, metadata_json, should_stop, "
    "stopping_reasons_json FROM checkpoints WHERE training_run_id = :rid AND step = :step"
)
_CURVE_VALUES = "SELECT values_json FROM checkpoints WHERE training_run_id = :rid ORDER BY step"
_RUNG_VALUES = (
    "SELECT value FROM rung_values WHERE experiment_id = :eid AND rung_step = :rung ORDER BY id"
)
_INSERT_RUNG_VALUE = (
    "INSERT INTO rung_values (experiment_id, rung_step, training_run_id, value) "
    "VALUES (:eid, :rung, :rid, :value)"
)
_INSERT_CHECKPOINT = (
    "INSERT INTO checkpoints (training_run_id, step, values_json, metadata_json, created, "
    "should_stop, stopping_reasons_json) VALUES (:rid, :step, :values_json, :metadata_json, "
    ":created, :should_stop, :reasons_json) RETURNING id"
)
_ADVANCE_RUN = (
    "UPDATE training_runs SET checkpoint_count = :count, last_step = :step, updated = :created, "
    "best_value = :best_value, best_checkpoint_id = :best_id, rung_step = :rung_step, "
    "stopped_at_step = :stopped_at_step, stopping_reason = :reason WHERE id = :rid"
)
# PostgreSQL: the checkpoint and the run's update in one statement (one round trip).
_INSERT_AND_ADVANCE = (
    "WITH c AS (INSERT INTO checkpoints (training_run_id, step, values_json, metadata_json, "
    "created, should_stop, stopping_reasons_json) VALUES (:rid, :step, :values_json, "
    ":metadata_json, :created, :should_stop, :reasons_json) RETURNING id), "
    "u AS (UPDATE training_runs SET checkpoint_count = :count, last_step = :step, "
    "updated = :created, best_value = :best_value, best_checkpoint_id = CASE WHEN :new_best "
    "THEN (SELECT id FROM c) ELSE best_checkpoint_id END, rung_step = :rung_step, "
    "stopped_at_step = :stopped_at_step, stopping_reason = :reason WHERE id = :rid) "
    "SELECT id FROM c"
)
_DECISION_LOCK = "SELECT pg_advisory_xact_lock(:ns, CAST(:key AS integer))"
_NAMED = re.compile(r":(\w+)")


class CheckpointSql:
    """The checkpoint statements of one write transaction (a batch of posts), on the raw driver
    connection of its session (BEGIN IMMEDIATE on SQLite, the driver's implicit BEGIN on
    PostgreSQL), with what the transaction's locks make safe to remember until it ends: the
    locked runs (updated here as checkpoints advance them) and the values of each rung read
    under the experiment's decision lock (appended to as values are recorded)."""

    def __init__(self, session: Session) -> None:
        connection = session.connection()
        self.postgres = connection.dialect.name == "postgresql"
        driver = connection.connection.driver_connection
        self._cursor: Any = driver.cursor()  # type: ignore[union-attr]
        self._runs: dict[int, RunForCheckpoint] = {}
        self._decisions_locked: set[int] = set()
        self._rungs: dict[tuple[int, int], list[float]] = {}
        self._new_rung_values: list[dict[str, Any]] = []

    def _run(self, sql: str, params: dict[str, Any]) -> Any:
        self._cursor.execute(_for_psycopg(sql) if self.postgres else sql, params)
        return self._cursor

    def lock_runs(self, run_ids: list[int]) -> None:
        """Read the non-deleted runs among ``run_ids`` with their row locks (``FOR UPDATE``
        on PostgreSQL, all in one statement in id order; SQLite's write transaction already
        excludes every other writer). Checkpoints of one run are serialized by its lock."""
        ids = sorted({i for i in run_ids if 0 < i <= MAX_ID})
        if not ids:
            return
        if self.postgres:
            sql = _RUNS_FOR_CHECKPOINTS + "r.id = ANY(:ids) ORDER BY r.id FOR UPDATE OF r"
            rows = self._run(sql, {"no": False, "ids": ids}).fetchall()
        else:
            rows = []
            for run_id in ids:
                found = self._run(
                    _RUNS_FOR_CHECKPOINTS + "r.id = :rid", {"no": False, "rid": run_id}
                ).fetchone()
                if found is not None:
                    rows.append(found)
        for row in rows:
            self._runs[int(row[0])] = RunForCheckpoint(*row)

    def run(self, client_id: int, run_id: int, experiment_id: int | None) -> RunForCheckpoint:
        """The client's non-deleted run (of ``experiment_id`` when given), locked by
        ``lock_runs``, as earlier checkpoints of this transaction left it; or 404."""
        run = self._runs.get(run_id)
        if (
            run is None
            or run.client_id != client_id
            or (experiment_id is not None and run.experiment_id != experiment_id)
        ):
            raise not_found()
        return run

    def at_step(self, run_id: int, step: int) -> StoredCheckpoint | None:
        """The run's checkpoint at ``step``, if one was stored."""
        row = self._run(_CHECKPOINT_AT_STEP, {"rid": run_id, "step": step}).fetchone()
        return None if row is None else _stored(row)

    def curves(self, run_id: int, metrics: Iterable[str | None]) -> dict[str | None, list[float]]:
        """As ``metric_curves``: each metric's values over the stored checkpoints, step order."""
        wanted = set(metrics)
        curves: dict[str | None, list[float]] = {name: [] for name in wanted}
        if not wanted:
            return curves
        for (values_json,) in self._run(_CURVE_VALUES, {"rid": run_id}).fetchall():
            for entry in json.loads(values_json):
                if entry["name"] in wanted:
                    curves[entry["name"]].append(float(entry["value"]))
        return curves

    def lock_decisions(self, experiment_id: int) -> None:
        """As ``lock_stopping_decisions`` (the same advisory lock, once per transaction; it
        is held until the transaction ends)."""
        if self.postgres and experiment_id not in self._decisions_locked:
            key = (experiment_id + 2**31) % 2**32 - 2**31
            self._run(_DECISION_LOCK, {"ns": _PG_DECISION_NAMESPACE, "key": key}).fetchone()
        self._decisions_locked.add(experiment_id)

    def rung_values(self, experiment_id: int, rung_step: int) -> list[float]:
        """The values recorded at a rung so far, in the order they were recorded. Called under
        the decision lock (``lock_decisions``): no other transaction records one at this rung
        until this one ends, so a rung is read once per transaction."""
        if experiment_id not in self._decisions_locked:
            raise RuntimeError("rung values are read under the experiment's decision lock")
        key = (experiment_id, rung_step)
        if key not in self._rungs:
            rows = self._run(_RUNG_VALUES, {"eid": experiment_id, "rung": rung_step}).fetchall()
            self._rungs[key] = [float(value) for (value,) in rows]
        return list(self._rungs[key])

    def record_rung_value(
        self, experiment_id: int, rung_step: int, run_id: int, value: float
    ) -> None:
        """A run's value at a rung (once per run and rung: the table's unique key); stored by
        ``finish``, in the order recorded."""
        self.rung_values(experiment_id, rung_step)
        self._rungs[(experiment_id, rung_step)].append(value)
        self._new_rung_values.append(
            {"eid": experiment_id, "rung": rung_step, "rid": run_id, "value": value}
        )

    def insert(
        self,
        run: RunForCheckpoint,
        checkpoint: StoredCheckpoint,
        new_best: bool,
    ) -> int:
        """Store ``checkpoint`` (its ``id`` is ignored) and write ``run`` as it is after it
        (counters, rung, first stop; ``best_value`` already updated, the best checkpoint is
        this one when ``new_best``). The new checkpoint's id."""
        params = {
            "rid": run.id,
            "step": checkpoint.step,
            "values_json": checkpoint.values_json,
            "metadata_json": checkpoint.metadata_json,
            "created": checkpoint.created,
            "should_stop": checkpoint.should_stop,
            "reasons_json": checkpoint.stopping_reasons_json,
            "count": run.checkpoint_count,
            "best_value": run.best_value,
            "rung_step": run.rung_step,
            "stopped_at_step": run.stopped_at_step,
            "reason": run.stopping_reason,
        }
        if self.postgres:
            (checkpoint_id,) = self._run(
                _INSERT_AND_ADVANCE, {**params, "new_best": new_best}
            ).fetchone()
        else:
            (checkpoint_id,) = self._run(_INSERT_CHECKPOINT, params).fetchone()
        checkpoint_id = int(checkpoint_id)
        if new_best:
            run.best_checkpoint_id = checkpoint_id
        if not self.postgres:
            self._run(_ADVANCE_RUN, {**params, "best_id": run.best_checkpoint_id})
        return checkpoint_id

    def finish(self) -> None:
        """Store the rung values recorded in this transaction (before it commits)."""
        if self._new_rung_values:
            sql = _INSERT_RUNG_VALUE
            self._cursor.executemany(
                _for_psycopg(sql) if self.postgres else sql, self._new_rung_values
            )
            self._new_rung_values = []


@lru_cache(maxsize=64)
def _for_psycopg(sql: str) -> str:
    return _NAMED.sub(r"%(\1)s", sql)


def _stored(row: Any) -> StoredCheckpoint:
    ident, run_id, created, step, values_json, metadata_json, should_stop, reasons = row
    return StoredCheckpoint(
        int(ident),
        int(run_id),
        int(created),
        int(step),
        values_json,
        metadata_json,
        bool(should_stop),
        reasons,
    )
