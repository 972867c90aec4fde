"""One engine run per experiment at a time, across every server process on the database.

The engine's pending-awareness (constant liar) only works if each proposal is computed after the
previous one is stored: two processes proposing at once would each miss the other's point. So
every engine call (a create that asks the engine, a pool refill) holds this lock, and no other:
not the experiment's row lock and not SQLite's writer lock, so observations, lease renewals and
every other experiment go on while the engine computes.

Inside a process the lock is a ``threading.Lock`` per experiment (threads queue cheaply). Across
processes it lives with the database, as design.md asks: a PostgreSQL session advisory lock, or
for a SQLite file (only ever shared by processes of one host) a POSIX byte-range lock on a
sidecar file, at the experiment id's offset. Both vanish with the process that holds them.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, text

from suggestion_server.storage.database import Store

# pg_advisory_lock(int4, int4): a namespace of our own, then the experiment id (wrapped to int4;
# two experiments sharing a key only serialize each other, which is harmless).
_PG_NAMESPACE = 0x6F70
_PG_LOCK = text("SELECT pg_advisory_lock(:ns, CAST(:key AS integer))")
_PG_TRY_LOCK = text("SELECT pg_try_advisory_lock(:ns, CAST(:key AS integer))")
_PG_UNLOCK = text("SELECT pg_advisory_unlock(:ns, CAST(:key AS integer))")
# A waiting process gives up after this long (a holder that long is stuck, not computing).
LOCK_TIMEOUT_S = 120


def _pg_key(experiment_id: int) -> int:
    return (experiment_id + 2**31) % 2**32 - 2**31


def sqlite_lock_path(store: Store) -> Path | None:
    """The sidecar lock file of a SQLite file database; None for an in-memory one."""
    database = store.engine.url.database
    if not store.is_sqlite or not database or database == ":memory:":
        return None
    return Path(f"{database}.engine-locks")


class EngineLocks:
    """Per-experiment mutual exclusion of engine runs (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._guard = threading.Lock()
        self._local: dict[int, threading.Lock] = {}
        self._file = sqlite_lock_path(store)
        self._fd: int | None = None

    def _local_lock(self, experiment_id: int) -> threading.Lock:
        with self._guard:
            lock = self._local.get(experiment_id)
            if lock is None:
                lock = self._local[experiment_id] = threading.Lock()
            return lock

    @contextmanager
    def hold(self, experiment_id: int, *, wait: bool = True) -> Iterator[bool]:
        """Hold the experiment's engine lock for the block; yields False (and holds nothing)
        when ``wait`` is False and another thread or process holds it."""
        local = self._local_lock(experiment_id)
        if not local.acquire(blocking=wait, timeout=LOCK_TIMEOUT_S if wait else -1):
            if wait:
                raise TimeoutError(f"engine lock of experiment {experiment_id} not acquired")
            yield False
            return
        try:
            if self._store.is_sqlite:
                with self._file_lock(experiment_id, wait) as acquired:
                    yield acquired
            else:
                with self._advisory_lock(experiment_id, wait) as acquired:
                    yield acquired
        finally:
            local.release()

    @contextmanager
    def _advisory_lock(self, experiment_id: int, wait: bool) -> Iterator[bool]:
        params = {"ns": _PG_NAMESPACE, "key": _pg_key(experiment_id)}
        with self._store.engine.connect() as connection:
            # Autocommit: the lock belongs to the session, no transaction stays open meanwhile.
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            if wait:
                connection.exec_driver_sql(f"SET lock_timeout = '{LOCK_TIMEOUT_S}s'")
                try:
                    connection.execute(_PG_LOCK, params)
                finally:
                    connection.exec_driver_sql("RESET lock_timeout")
            elif not connection.execute(_PG_TRY_LOCK, params).scalar():
                yield False
                return
            try:
                yield True
            finally:
                _unlock(connection, params)

    @contextmanager
    def _file_lock(self, experiment_id: int, wait: bool) -> Iterator[bool]:
        if self._file is None:  # in-memory database: one process, the local lock is enough
            yield True
            return
        fd = self._lock_fd(self._file)
        flags = fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB
        try:
            fcntl.lockf(fd, flags, 1, experiment_id, os.SEEK_SET)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, experiment_id, os.SEEK_SET)

    def _lock_fd(self, path: Path) -> int:
        # POSIX record locks belong to the process, so one descriptor serves every thread (the
        # per-experiment threading.Lock keeps two threads off the same byte).
        with self._guard:
            if self._fd is None:
                self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            return self._fd


def _unlock(connection: Connection, params: dict[str, int]) -> None:
    try:
        connection.execute(_PG_UNLOCK, params)
    except Exception:
        # The session may still hold the lock: never hand it back to the pool.
        connection.invalidate()
        raise
