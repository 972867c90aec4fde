"""The engine process: a child of the server process where engine runs compute.

A Gaussian-process fit and the acquisition search are mostly Python-level NumPy work that holds
the interpreter lock; in the server process they starve request handling (measured: with the
engine in-process, a saturated server spent a third of its interpreter time in the engine and
its request latency grew with it). In a child they only share the CPU. The child reads the rows
with its own database connections (reads only; every write stays in the server process, under
the experiment's engine lock that the server process holds for the whole run) and keeps the
engine's per-experiment caches between runs.

One child per server process, started with ``spawn`` (forking a threaded server is unsafe) and
warmed at start-up. A child that dies is replaced once per run; a run that still fails, or takes
longer than ``RUN_TIMEOUT_S``, fails the request (500) and the pool's next run starts over.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from sqlalchemy.exc import DBAPIError

from suggestion_server.pool.optimizer_runs import OptimizerRunner, Run

log = logging.getLogger("suggestion_server.pool.optimizer_process")

RUN_TIMEOUT_S = 120.0
_PARENT_CHECK_S = 1.0
_DB_CONNECTIONS = 2

_runner: OptimizerRunner | None = None  # the child's


def in_memory(db_url: str) -> bool:
    """Whether ``db_url`` names an in-memory SQLite database (a child cannot share it)."""
    return db_url.startswith("sqlite") and (
        ":memory:" in db_url or db_url.rstrip("/") in ("sqlite:", "sqlite+pysqlite:")
    )


def _exit_with_parent(parent: int) -> None:
    """The child ends when the server process is gone, even after a SIGKILL."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="engine-parent-watch", daemon=True).start()


def _start_child(db_url: str, seed: int | None, parent: int, log_level: int) -> None:
    global _runner
    logging.basicConfig(
        level=log_level, format="%(asctime)s %(levelname)s %(name)s [engine] %(message)s"
    )
    _exit_with_parent(parent)
    from suggestion_server.optimizer.suggester import StudySuggester
    from suggestion_server.storage.database import Store, make_engine

    _runner = OptimizerRunner(
        Store(make_engine(db_url, _DB_CONNECTIONS)), StudySuggester(seed=seed)
    )


def _child_runner() -> OptimizerRunner:
    if _runner is None:
        raise RuntimeError("the engine process was not initialized")
    return _runner


def _ready() -> bool:
    return _runner is not None


def _compute(experiment_id: int, waiting: int, cycle_s: float, requested: bool) -> Run:
    runner = _child_runner()
    for attempt in range(2):
        try:
            return runner.compute(
                experiment_id, waiting=waiting, cycle_s=cycle_s, requested=requested
            )
        except DBAPIError as exc:
            # The database restarted since this process last used its connections (the server
            # process met the outage on its own ones): SQLAlchemy has just discarded them, so
            # once more on fresh ones. A run only reads; repeating it is harmless.
            if attempt or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")


def _forget(experiment_id: int) -> None:
    _child_runner().forget(experiment_id)


class OptimizerProcess:
    """Engine runs in a child process (see the module doc); the pool's ``OptimizerRuns``."""

    def __init__(self, db_url: str, seed: int | None) -> None:
        self._db_url = db_url
        self._seed = seed
        self._guard = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False

    def start(self) -> None:
        """Start the child now, so the first suggestion does not wait for its imports."""
        self._submit_ready()

    def _executor_now(self) -> ProcessPoolExecutor:
        with self._guard:
            if self._closed:
                raise RuntimeError("the engine process is shut down")
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_child,
                    initargs=(
                        self._db_url,
                        self._seed,
                        os.getpid(),
                        logging.getLogger().getEffectiveLevel(),
                    ),
                )
            return self._executor

    def _submit_ready(self) -> Future[bool]:
        return self._executor_now().submit(_ready)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._guard:
            if self._executor is broken:
                self._executor = None
        broken.shutdown(wait=False, cancel_futures=True)

    def compute(self, experiment_id: int, *, waiting: int, cycle_s: float, requested: bool) -> Run:
        """One engine run in the child (``OptimizerRunner.compute``)."""
        for attempt in range(2):
            executor = self._executor_now()
            try:
                future = executor.submit(_compute, experiment_id, waiting, cycle_s, requested)
                return future.result(timeout=RUN_TIMEOUT_S)
            except BrokenProcessPool:
                log.warning("engine process died; starting another (attempt %s)", attempt + 1)
                self._replace(executor)
        raise RuntimeError("the engine process died twice in one run")

    def forget(self, experiment_id: int) -> None:
        """Drop the child's cached state of the experiment."""
        executor = self._executor_now()
        try:
            executor.submit(_forget, experiment_id).result(timeout=RUN_TIMEOUT_S)
        except BrokenProcessPool:
            self._replace(executor)  # a new child starts with no cached state

    def shutdown(self) -> None:
        """Stop the child (runs in flight are abandoned)."""
        with self._guard:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
