"""Engine runs and the suggestion pool: how a suggestion gets assignments when neither the
request nor the queue gives them (docs/api.md, "The suggestion pool").

An engine run holds only the experiment's engine lock (``refill_lock.py``): it reads the rows in
a read transaction, lets the engine compute outside any write lock, then stores its results in
one short write. A run serves one request and, when demand is high, also computes a batch of
entries for the pool (``suggestion_pool`` table) that later requests take in a short write,
without the engine. A pending point is an open suggestion or a pooled entry, so every proposal
of a run sees all of them, and its own earlier proposals, as running trials.

How much a run computes is ``sizing.py``'s rule; the computing is ``optimizer_runs.py``'s, in
this process or in the engine process (``optimizer_process.py``) that keeps it off the interpreter
lock that request handling needs.

Background refills run in a small executor, started when a request takes from the pool (at most
every ``CHECK_EVERY_S``, and after a pause as long as the last run's engine time); the run
itself decides whether anything is missing. A refill that cannot get the engine lock at once
leaves the work to the holder.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session

from suggestion_server.pool.entries import (
    BATCH_RANK,
    ENGINE_RANK,
    PADDING_RANK,
    SOURCE_OF_RANK,
    drop_pool,
    drop_stale,
    store_entries,
    take_entry,
)
from suggestion_server.pool.optimizer_runs import Run
from suggestion_server.pool.refill_lock import EngineLocks
from suggestion_server.pool.sizing import CYCLE_BUDGET_S
from suggestion_server.storage.database import Store
from suggestion_server.wire.errors import bad_request

log = logging.getLogger("suggestion_server.pool")

# The waiting requests of a process look at the pool about this often in all (a run in another
# process does not wake them); each gives up after WAIT_LIMIT_S.
POLL_S = 0.05
WAIT_LIMIT_S = 120.0
# A pool take checks whether a refill is due at most this often.
CHECK_EVERY_S = 0.1
# Background refills leave the process at least this share of time between engine runs.
ENGINE_SHARE = 0.5


class OptimizerRuns(Protocol):
    """Where optimizer runs compute: ``optimizer_runs.OptimizerRunner`` in this process, or
    ``optimizer_process.OptimizerProcess`` in a child process."""

    def compute(
        self, experiment_id: int, *, waiting: int, cycle_s: float, requested: bool
    ) -> Run: ...

    def forget(self, experiment_id: int) -> None: ...

    def shutdown(self) -> None: ...


@dataclass
class _Experiment:
    """What this process knows about one experiment's engine runs."""

    wake: threading.Condition = field(default_factory=threading.Condition)
    asking: int = 0  # create requests of this process in flight (queued for a thread too)
    waiting: int = 0  # of those, the ones waiting for an engine run
    cycle_s: float = CYCLE_BUDGET_S
    stored: int = 0  # bumped whenever a run of this process stored entries
    refilling: bool = False
    next_check: float = 0.0  # monotonic time before which no refill starts


@dataclass(frozen=True)
class Taken:
    """A pooled entry handed to a request."""

    assignments_json: str
    source: str  # "pool" (the engine's), "batch" (its batch picks) or "padding"


class SuggestionPool:
    """Engine runs (for a request, or a refill) and pool takes; one per server process."""

    def __init__(self, store: Store, runner: OptimizerRuns, clock: Callable[[], float]) -> None:
        self._store = store
        self._runner = runner
        self._clock = clock
        self._locks = EngineLocks(store)
        self._guard = threading.Lock()
        self._experiments: dict[int, _Experiment] = {}
        self._refills = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pool-refill")

    def _state(self, experiment_id: int) -> _Experiment:
        with self._guard:
            state = self._experiments.get(experiment_id)
            if state is None:
                state = self._experiments[experiment_id] = _Experiment()
            return state

    def shutdown(self) -> None:
        """Stop refilling (pending refills are dropped) and the engine runner."""
        self._refills.shutdown(wait=False, cancel_futures=True)
        self._runner.shutdown()

    def forget(self, experiment_id: int) -> None:
        """Drop the engine's cached state of the experiment (deleted, or its space changed)."""
        self._runner.forget(experiment_id)

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
        return Taken(row.assignments_json, SOURCE_OF_RANK.get(row.rank, "padding"))

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
    ) -> tuple[Run, Any]:
        """Under the engine lock: compute, then one short write. Returns the run and, when the
        run computed the requester's assignments, ``insert_own``'s result."""
        started = time.monotonic()
        requested = insert_own is not None
        with state.wake:
            # Requests that will want a suggestion soon: every create in flight but this run's
            # own requester (some are waiting, some still queued for a thread).
            waiting = max(state.waiting, state.asking - (1 if requested else 0))
            cycle_s = state.cycle_s
        run = self._runner.compute(
            experiment_id, waiting=waiting, cycle_s=cycle_s, requested=requested
        )
        if run.deleted:
            if requested:
                raise bad_request(
                    f"Cannot create suggestions for deleted experiment {experiment_id}"
                )
            return run, None
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
            ranks = Counter(entry.rank for entry in run.entries)
            log.info(
                "pool refilled experiment=%s engine=%s batch=%s padding=%s target=%s rate=%.1f "
                "propose_ms=%.0f waiting=%s ms=%.0f",
                experiment_id,
                ranks[ENGINE_RANK],
                ranks[BATCH_RANK],
                ranks[PADDING_RANK],
                run.target,
                run.rate,
                run.propose_s * 1000,
                state.waiting,
                elapsed * 1000,
            )
        return run, result
