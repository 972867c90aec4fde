"""What one engine run computes: read the experiment's rows, size the run (``sizing.py``),
ask the engine for proposals and add padding. No writes: the suggestion pool stores the result
in one short write under the experiment's engine lock (``suggestion_pool.py``).

An ``OptimizerRunner`` runs in the server process, or in the engine process
(``optimizer_process.py``) so that the engine's computing does not take the server's interpreter
lock from request handling. It keeps what it measures per experiment (demand, the engine's time
per proposal) between runs.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from suggestion_server.domain.conditionals import conditionals_of
from suggestion_server.domain.experiment_space import (
    engine_assignments,
    engine_metrics,
    linear_constraints_of,
    metric_key,
    rendered_assignments,
    search_spec,
)
from suggestion_server.optimizer.api import SearchSpec, Suggester
from suggestion_server.optimizer.padding import PointKey, padding_points, point_key
from suggestion_server.pool.entries import (
    BATCH_RANK,
    ENGINE_RANK,
    PADDING_RANK,
    BatchRowSource,
    Freshness,
    PoolEntry,
    engine_key,
    last_observation_id,
    new_pool_id,
    open_count,
    pool_freshness,
    queued_assignments,
)
from suggestion_server.pool.sizing import CYCLE_BUDGET_S, Demand, plan_run
from suggestion_server.storage.database import Store
from suggestion_server.storage.models import Experiment, Suggestion
from suggestion_server.storage.queries import dumps

# Demand is measured over at least this long.
RATE_WINDOW_S = 1.0
# Batch picks per run at most (each costs about half a millisecond, more as the batch grows);
# the rest of a saturated run is random padding.
BATCH_MAX = 128


@dataclass
class Run:
    """The outcome of one engine run (picklable: it crosses from the engine process)."""

    deleted: bool = False  # the experiment is gone (or deleted): nothing computed
    own: dict[str, Any] | None = None  # the requester's assignments
    entries: list[PoolEntry] = field(default_factory=list)
    freshness: Freshness | None = None
    pool_mode: bool = False
    stale_groups: list[int] = field(default_factory=list)
    pooled: int = 0  # entries in the pool when the run started, fresh or stale
    version: int = 0  # the experiment's version the run read
    engine_s: float = 0.0  # time spent in the engine
    # What the run saw, for the pool's log line.
    target: int = 0
    rate: float = 0.0
    propose_s: float = 0.0

    def writes(self) -> bool:
        """Whether the run has anything to store."""
        if self.own is not None or self.entries or self.stale_groups:
            return True
        return not self.pool_mode and self.pooled > 0


@dataclass
class _Measured:
    """Demand and engine speed of one experiment, as this runner measured them."""

    propose_s: float | None = None  # moving average of the engine's time per proposal
    mark_id: int | None = None
    mark_time: float = 0.0
    rate: float = 0.0  # suggestions created per second, all processes


class OptimizerRunner:
    """Engine runs over ``store`` with ``suggester`` (see the module doc)."""

    def __init__(self, store: Store, suggester: Suggester) -> None:
        self._store = store
        self._suggester = suggester
        self._measured: dict[int, _Measured] = {}
        self._rng = random.Random()  # noqa: S311 - sampling, not security

    def forget(self, experiment_id: int) -> None:
        """Drop the engine's cached state of the experiment (deleted, or its space changed)."""
        self._suggester.forget(experiment_id)
        self._measured.pop(experiment_id, None)

    def shutdown(self) -> None:
        """Nothing to stop in this process."""

    def compute(self, experiment_id: int, *, waiting: int, cycle_s: float, requested: bool) -> Run:
        """One run: ``waiting`` requests want a suggestion soon besides the requester (if
        ``requested``); a run takes about ``cycle_s`` from start to stored."""
        run = Run()
        measured = self._measured.setdefault(experiment_id, _Measured())
        with self._store.read() as session:
            experiment = session.get(Experiment, experiment_id)
            if experiment is None or experiment.state == "deleted":
                run.deleted = True
                return run
            params = json.loads(experiment.parameters_json)
            metrics = json.loads(experiment.metrics_json)
            conditionals = conditionals_of(experiment)
            spec = search_spec(
                experiment.id,
                experiment.type,
                params,
                metrics,
                linear_constraints_of(experiment),
                conditionals,
            )
            self._measure_rate(session, experiment_id, measured)
            pool = pool_freshness(session, experiment_id, experiment.version)
            run.stale_groups, run.pooled = pool.stale_marks, pool.total
            run.version = experiment.version
            source = BatchRowSource(
                session,
                experiment_id,
                {metric_key(m["name"]): metric_key(m["name"]) for m in engine_metrics(metrics)},
            )
            plan = plan_run(
                Demand(
                    rate=measured.rate,
                    propose_s=measured.propose_s,
                    cycle_s=cycle_s,
                    open_suggestions=open_count(session, experiment_id),
                    waiting=waiting,
                    fresh=pool.fresh,
                    fresh_engine=pool.fresh_engine,
                    requested=requested,
                    can_pad=spec.kind != "grid",
                )
            )
            run.pool_mode = plan.pool_mode
            run.target, run.rate = plan.target, measured.rate
            if plan.engine + plan.padding == 0:
                return run
            mark = last_observation_id(session, experiment_id)
            pending = source.pending()
            engine_started = time.monotonic()
            proposals: list[tuple[int, dict[str, Any]]] = []
            # Saturated, full proposals get half the run's time and batch picks the rest (about
            # 100 picks in that time against 2-5 full proposals), so the run, which requests
            # may be waiting for, takes no longer than without batch picks.
            budget_s = CYCLE_BUDGET_S / 2 if plan.saturated else CYCLE_BUDGET_S
            while len(proposals) < plan.engine:
                proposals.append(
                    self._propose(spec, experiment.version, source, measured, params, conditionals)
                )
                if time.monotonic() - engine_started >= budget_s:
                    break  # the time bound of sizing.py
            shortfall = plan.engine - len(proposals) if plan.saturated else 0
            fill = plan.padding + shortfall
            taken = {point_key(row.assignments) for row in pending}
            taken.update(point_key(assignments) for _, assignments in proposals)
            if fill:
                # Queued points are handed out soon: filling must not hand them out again.
                taken.update(point_key(a) for a in queued_assignments(session, experiment_id))
            batch = self._batch(
                spec, experiment.version, source, (params, conditionals), fill, taken
            )
            run.engine_s = time.monotonic() - engine_started
            run.propose_s = measured.propose_s or 0.0
            padding = [
                rendered_assignments(point, params)
                for point in padding_points(spec, taken, fill - len(batch), self._rng)
            ]
        if requested and proposals:
            run.own = proposals.pop(0)[1]
        run.entries = [
            PoolEntry(key, dumps(assignments) or "{}", ENGINE_RANK)
            for key, assignments in proposals
        ]
        run.entries += [
            PoolEntry(pool_id, dumps(assignments) or "{}", BATCH_RANK)
            for pool_id, assignments in batch
        ]
        run.entries += [
            PoolEntry(new_pool_id(), dumps(point) or "{}", PADDING_RANK) for point in padding
        ]
        if run.pool_mode:
            run.freshness = Freshness(experiment.version, mark, plan.stale_after)
        return run

    def _propose(
        self,
        spec: SearchSpec,
        version: int,
        source: BatchRowSource,
        measured: _Measured,
        params: list[Any],
        conditionals: list[Any],
    ) -> tuple[int, dict[str, Any]]:
        """(pool id, rendered assignments) of one proposal, recorded as pending for the next."""
        pool_id = new_pool_id()
        started = time.monotonic()
        key = engine_key(pool_id)
        proposed = self._suggester.propose(spec, version, source, for_suggestion_id=key)
        elapsed = time.monotonic() - started
        measured.propose_s = (
            elapsed if measured.propose_s is None else 0.8 * measured.propose_s + 0.2 * elapsed
        )
        assignments = engine_assignments(proposed, params, conditionals)
        source.add_pending(key, assignments)
        return pool_id, assignments

    def _batch(
        self,
        spec: SearchSpec,
        version: int,
        source: BatchRowSource,
        space: tuple[list[Any], list[Any]],
        count: int,
        taken: set[PointKey],
    ) -> list[tuple[int, dict[str, Any]]]:
        """Up to ``count`` (at most ``BATCH_MAX``) (pool id, assignments) of the engine's batch
        picks, none in ``taken`` (which gains theirs); the rest of a saturated run is padding."""
        pool_ids = [new_pool_id() for _ in range(min(count, BATCH_MAX))]
        if not pool_ids:
            return []
        proposed = self._suggester.propose_batch(
            spec, version, source, [engine_key(pool_id) for pool_id in pool_ids]
        )
        batch = []
        for pool_id, point in zip(pool_ids, proposed):
            assignments = engine_assignments(point, *space)
            key = point_key(assignments)
            if key in taken:
                continue  # never stored: the engine drops its trial at the next run
            taken.add(key)
            source.add_pending(engine_key(pool_id), assignments)
            batch.append((pool_id, assignments))
        return batch

    def _measure_rate(self, session: Session, experiment_id: int, measured: _Measured) -> None:
        """Suggestions created per second (all processes) since this runner's last mark."""
        now = time.monotonic()
        if measured.mark_id is not None and now - measured.mark_time < RATE_WINDOW_S:
            return
        count, newest = session.execute(
            select(func.count(), func.max(Suggestion.id)).where(
                Suggestion.experiment_id == experiment_id,
                Suggestion.id > (measured.mark_id or 0),
            )
        ).one()
        if measured.mark_id is not None:
            # Smoothed: one quiet or busy second (a stalled machine) should not swing the pool.
            latest = int(count) / (now - measured.mark_time)
            measured.rate = latest if measured.rate == 0 else 0.5 * measured.rate + 0.5 * latest
        measured.mark_id = int(newest or measured.mark_id or 0)
        measured.mark_time = now
