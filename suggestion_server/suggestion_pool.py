"""Engine runs and the suggestion pool: how a suggestion gets assignments when neither the
request nor the queue gives them (docs/api.md, "The suggestion pool").

An engine run holds only the experiment's engine lock (``engine_lock.py``): it reads the rows in
a read transaction, lets the engine compute outside any write lock, then stores its results in
one short write. A run serves one request and, when demand is high, also computes a batch of
entries for the pool (``suggestion_pool`` table) that later requests take in a short write,
without the engine. A pending point is an open suggestion or a pooled entry, so every proposal
of a run sees all of them, and its own earlier proposals, as running trials.

How much a run computes is ``pool_sizing.py``'s rule.

Background refills run in a small executor, started when a request takes from the pool (at most
every ``CHECK_EVERY_S``, and after a pause as long as the last run's engine time); the run
itself decides whether anything is missing. A refill that cannot get the engine lock at once
leaves the work to the holder.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from suggestion_server.db import Store
from suggestion_server.engine_lock import EngineLocks
from suggestion_server.errors import bad_request
from suggestion_server.experiment_space import (
    engine_metrics,
    linear_constraints_of,
    metric_key,
    rendered_assignments,
    search_spec,
)
from suggestion_server.models import Experiment, Suggestion
from suggestion_server.padding import padding_points, point_key
from suggestion_server.pool_sizing import CYCLE_BUDGET_S, Demand, plan_run
from suggestion_server.pool_store import (
    ENGINE_RANK,
    PADDING_RANK,
    BatchRowSource,
    Freshness,
    PoolEntry,
    drop_pool,
    drop_stale,
    engine_key,
    last_observation_id,
    new_pool_id,
    open_count,
    pool_freshness,
    store_entries,
    take_entry,
)
from suggestion_server.store import dumps
from suggestion_server.suggest.api import SearchSpec, Suggester

log = logging.getLogger("suggestion_server.pool")

# Demand is measured over at least this long.
RATE_WINDOW_S = 1.0
# The waiting requests of a process look at the pool about this often in all (a run in another
# process does not wake them); each gives up after WAIT_LIMIT_S.
POLL_S = 0.05
WAIT_LIMIT_S = 120.0
# A pool take checks whether a refill is due at most this often.
CHECK_EVERY_S = 0.1
# Background refills leave the process at least this share of time between engine runs.
ENGINE_SHARE = 0.5


@dataclass
class _Experiment:
    """What this process knows about one experiment's engine runs."""

    wake: threading.Condition = field(default_factory=threading.Condition)
    asking: int = 0  # create requests of this process in flight (queued for a thread too)
    waiting: int = 0  # of those, the ones waiting for an engine run
    propose_s: float | None = None  # moving average of the engine's time per proposal
    cycle_s: float = CYCLE_BUDGET_S
    mark_id: int | None = None
    mark_time: float = 0.0
    rate: float = 0.0  # suggestions created per second, all processes
    target: int = 0
    stored: int = 0  # bumped whenever a run of this process stored entries
    refilling: bool = False
    next_check: float = 0.0  # monotonic time before which no refill starts


@dataclass(frozen=True)
class Taken:
    """A pooled entry handed to a request."""

    assignments_json: str
    source: str  # "pool" (the engine's) or "padding"


@dataclass
class _Run:
    """The outcome of one engine run."""

    own: dict[str, Any] | None = None  # the requester's assignments
    entries: list[PoolEntry] = field(default_factory=list)
    freshness: Freshness | None = None
    pool_mode: bool = False
    stale_groups: list[int] = field(default_factory=list)
    pooled: int = 0  # entries in the pool when the run started, fresh or stale
    version: int = 0  # the experiment's version the run read
    engine_s: float = 0.0  # time spent in the engine

    def writes(self) -> bool:
        """Whether the run has anything to store."""
        if self.own is not None or self.entries or self.stale_groups:
            return True
        return not self.pool_mode and self.pooled > 0


class SuggestionPool:
    """Engine runs (for a request, or a refill) and pool takes; one per server process."""

    def __init__(self, store: Store, suggester: Suggester, clock: Callable[[], float]) -> None:
        self._store = store
        self._suggester = suggester
        self._clock = clock
        self._locks = EngineLocks(store)
        self._guard = threading.Lock()
        self._experiments: dict[int, _Experiment] = {}
        self._refills = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pool-refill")
        self._rng = random.Random()  # noqa: S311 - sampling, not security

    def _state(self, experiment_id: int) -> _Experiment:
        with self._guard:
            state = self._experiments.get(experiment_id)
            if state is None:
                state = self._experiments[experiment_id] = _Experiment()
            return state

    def shutdown(self) -> None:
        """Stop refilling (pending refills are dropped)."""
        self._refills.shutdown(wait=False, cancel_futures=True)

    @contextmanager
    def asking(self, experiment_id: int) -> Iterator[None]:
        """Count a create request of the experiment for the block (from its arrival)."""
        state = self._state(experiment_id)
        with state.wake:
            state.asking += 1
        try:
            yield
        finally:
            with state.wake:
                state.asking -= 1

    def take(self, session: Session, experiment: Any) -> Taken | None:
        """Inside the caller's short write: remove and return a fresh pooled entry, or None."""
        row = take_entry(session, experiment.id, experiment.version)
        if row is None:
            return None
        return Taken(row.assignments_json, "pool" if row.rank == ENGINE_RANK else "padding")

    def after_take(self, experiment_id: int) -> None:
        """Start a background refill if one may be due."""
        state = self._state(experiment_id)
        now = time.monotonic()
        with state.wake:
            if state.refilling or now < state.next_check:
                return
            state.refilling = True
            state.next_check = now + CHECK_EVERY_S
        try:
            self._refills.submit(self._refill, experiment_id)
        except RuntimeError:  # shutting down
            with state.wake:
                state.refilling = False

    def assignments_from_engine(
        self,
        experiment_id: int,
        take_from_pool: Callable[[], Any | None],
        insert_own: Callable[[Session, dict[str, Any]], Any],
    ) -> Any:
        """The requester's suggestion from an engine run, or from the pool if entries appear
        while another run holds the engine lock. ``take_from_pool`` tries a pool take in its
        own short write; ``insert_own`` inserts the requester's suggestion with the run's
        assignments inside the run's write. Returns what either of them returned."""
        state = self._state(experiment_id)
        deadline = time.monotonic() + WAIT_LIMIT_S
        with state.wake:
            state.waiting += 1
            seen = state.stored
        waiting = True
        try:
            while True:
                with self._locks.hold(experiment_id, wait=False) as acquired:
                    if acquired:
                        with state.wake:
                            state.waiting -= 1
                            waiting = False
                        run, own = self._run_and_store(experiment_id, state, insert_own)
                        if run.own is not None:
                            return own
                # Another run holds the lock, or the pool had entries for us after all.
                with state.wake:
                    if not waiting:
                        state.waiting += 1
                        waiting = True
                    if state.stored == seen:
                        # Woken when a run of this process stored entries, else after a while (a
                        # run in another process wakes nobody): in all, the waiters of a process
                        # look at the pool about every POLL_S.
                        state.wake.wait(POLL_S * max(1, state.waiting))
                    seen = state.stored
                taken = take_from_pool()
                if taken is not None:
                    return taken
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no engine run for experiment {experiment_id}")
        finally:
            if waiting:
                with state.wake:
                    state.waiting -= 1

    def _refill(self, experiment_id: int) -> None:
        state = self._state(experiment_id)
        try:
            for _ in range(8):  # bounded: the next take starts another refill
                with self._locks.hold(experiment_id, wait=False) as acquired:
                    if not acquired:
                        return
                    run, _ = self._run_and_store(experiment_id, state, None)
                with state.wake:
                    # The engine gets about ENGINE_SHARE of the process: a saturated server
                    # still answers requests (padding covers the rest).
                    pause = run.engine_s * (1 / ENGINE_SHARE - 1)
                    state.next_check = time.monotonic() + max(CHECK_EVERY_S, pause)
                if not run.pool_mode or not run.entries or pause > CHECK_EVERY_S:
                    return
        except Exception:
            log.exception("pool refill failed experiment=%s", experiment_id)
        finally:
            with state.wake:
                state.refilling = False

    def _run_and_store(
        self,
        experiment_id: int,
        state: _Experiment,
        insert_own: Callable[[Session, dict[str, Any]], Any] | None,
    ) -> tuple[_Run, Any]:
        """Under the engine lock: compute, then one short write. Returns the run and, when the
        run computed the requester's assignments, ``insert_own``'s result."""
        started = time.monotonic()
        run = self._compute(experiment_id, state, requested=insert_own is not None)
        result: Any = None
        if not run.writes():
            return run, result
        with self._store.write() as session:
            if not run.pool_mode and run.pooled:
                drop_pool(session, experiment_id)
            else:
                for mark in run.stale_groups:
                    drop_stale(session, experiment_id, run.version, mark)
            if insert_own is not None and run.own is not None:
                result = insert_own(session, run.own)
            if run.freshness is not None:
                store_entries(
                    session, experiment_id, run.entries, run.freshness, int(self._clock())
                )
        elapsed = time.monotonic() - started
        with state.wake:
            state.cycle_s = 0.8 * state.cycle_s + 0.2 * max(elapsed, CYCLE_BUDGET_S)
            if run.entries:
                state.stored += 1
                state.wake.notify(len(run.entries))
            else:
                state.wake.notify(1)  # one waiter may take the lock now
        if run.entries:
            padded = sum(1 for entry in run.entries if entry.rank == PADDING_RANK)
            log.info(
                "pool refilled experiment=%s engine=%s padding=%s target=%s rate=%.1f "
                "propose_ms=%.0f waiting=%s ms=%.0f",
                experiment_id,
                len(run.entries) - padded,
                padded,
                state.target,
                state.rate,
                (state.propose_s or 0) * 1000,
                state.waiting,
                elapsed * 1000,
            )
        return run, result

    def _compute(self, experiment_id: int, state: _Experiment, *, requested: bool) -> _Run:
        run = _Run()
        with self._store.read() as session:
            experiment = session.get(Experiment, experiment_id)
            if experiment is None or experiment.state == "deleted":
                if requested:
                    raise bad_request(
                        f"Cannot create suggestions for deleted experiment {experiment_id}"
                    )
                return run
            params = json.loads(experiment.parameters_json)
            metrics = json.loads(experiment.metrics_json)
            spec = search_spec(
                experiment.id, experiment.type, params, metrics, linear_constraints_of(experiment)
            )
            self._measure_rate(session, experiment_id, state)
            pool = pool_freshness(session, experiment_id, experiment.version)
            run.stale_groups, run.pooled = pool.stale_marks, pool.total
            run.version = experiment.version
            source = BatchRowSource(
                session,
                experiment_id,
                {metric_key(m["name"]): metric_key(m["name"]) for m in engine_metrics(metrics)},
            )
            with state.wake:
                # Requests that will want a suggestion soon: every create in flight but this
                # run's own requester (some are waiting, some still queued for a thread).
                waiting = max(state.waiting, state.asking - (1 if requested else 0))
            plan = plan_run(
                Demand(
                    rate=state.rate,
                    propose_s=state.propose_s,
                    cycle_s=state.cycle_s,
                    open_suggestions=open_count(session, experiment_id),
                    waiting=waiting,
                    fresh=pool.fresh,
                    fresh_engine=pool.fresh_engine,
                    requested=requested,
                    can_pad=spec.kind != "grid",
                )
            )
            run.pool_mode = plan.pool_mode
            state.target = plan.target
            if plan.engine + plan.padding == 0:
                return run
            mark = last_observation_id(session, experiment_id)
            pending = source.pending()
            engine_started = time.monotonic()
            proposals = [
                self._propose(spec, experiment.version, source, state, params)
                for _ in range(plan.engine)
            ]
            run.engine_s = time.monotonic() - engine_started
            taken = {point_key(row.assignments) for row in pending}
            padding = [
                rendered_assignments(point, params)
                for point in padding_points(spec, taken, plan.padding, self._rng)
            ]
        if requested and proposals:
            run.own = proposals.pop(0)[1]
        run.entries = [
            PoolEntry(key, dumps(assignments) or "{}", ENGINE_RANK)
            for key, assignments in proposals
        ] + [PoolEntry(new_pool_id(), dumps(point) or "{}", PADDING_RANK) for point in padding]
        if run.pool_mode:
            run.freshness = Freshness(experiment.version, mark, plan.stale_after)
        return run

    def _propose(
        self,
        spec: SearchSpec,
        version: int,
        source: BatchRowSource,
        state: _Experiment,
        params: list[Any],
    ) -> tuple[int, dict[str, Any]]:
        """(pool id, rendered assignments) of one proposal, recorded as pending for the next."""
        pool_id = new_pool_id()
        started = time.monotonic()
        key = engine_key(pool_id)
        proposed = self._suggester.propose(spec, version, source, for_suggestion_id=key)
        elapsed = time.monotonic() - started
        state.propose_s = (
            elapsed if state.propose_s is None else 0.8 * state.propose_s + 0.2 * elapsed
        )
        missing = {p["name"] for p in params} - set(proposed)
        if missing:
            raise RuntimeError(f"engine proposed no value for {sorted(missing)}")
        assignments = rendered_assignments({p["name"]: proposed[p["name"]] for p in params}, params)
        source.add_pending(key, assignments)
        return pool_id, assignments

    def _measure_rate(self, session: Session, experiment_id: int, state: _Experiment) -> None:
        """Suggestions created per second (all processes) since this process's last mark."""
        now = time.monotonic()
        if state.mark_id is not None and now - state.mark_time < RATE_WINDOW_S:
            return
        count, newest = session.execute(
            select(func.count(), func.max(Suggestion.id)).where(
                Suggestion.experiment_id == experiment_id,
                Suggestion.id > (state.mark_id or 0),
            )
        ).one()
        if state.mark_id is not None:
            # Smoothed: one quiet or busy second (a stalled machine) should not swing the pool.
            latest = int(count) / (now - state.mark_time)
            state.rate = latest if state.rate == 0 else 0.5 * state.rate + 0.5 * latest
        state.mark_id = int(newest or state.mark_id or 0)
        state.mark_time = now
