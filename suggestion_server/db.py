"""Database engine and transactions: how a request gets a session.

SQLite: WAL, ``busy_timeout``, ``synchronous=NORMAL``, foreign keys on. Write transactions start
with ``BEGIN IMMEDIATE`` (so a transaction never has to upgrade a read lock, the classic source of
"database is locked"), and inside one process they also queue on a lock first, so threads wait on a
cheap in-process lock instead of SQLite's sleeping busy handler. PostgreSQL: an ordinary pool;
per-experiment serialization is a row lock taken by the services (``lock_experiment``).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from suggestion_server.config import normalize_db_url

SQLITE_BUSY_TIMEOUT_MS = 30_000

# Which BEGIN the next SQLite transaction on this thread/context should issue.
_begin_immediate: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "begin_immediate", default=False
)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module; we issue BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if _begin_immediate.get() else "BEGIN")


def make_engine(db_url: str) -> Engine:
    """Create the SQLAlchemy engine for ``db_url`` with the pool sized for concurrent writers."""
    url = normalize_db_url(db_url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=8,
            max_overflow=56,
            pool_timeout=60,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_size=10, max_overflow=40, pool_timeout=60, pool_pre_ping=True)


class Store:
    """Hands out sessions: ``read()`` for queries, ``write()`` for serialized writes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._sessions = sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self._sqlite_write_lock = threading.Lock()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads; its transaction is rolled back at the end."""
        with self._sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction commits at the end (rolls back on error)."""
        if not self.is_sqlite:
            with self._sessions() as session, session.begin():
                yield session
            return
        with self._sqlite_write_lock, self._sessions() as session, session.begin():
            token = _begin_immediate.set(True)
            try:
                session.connection()  # BEGIN IMMEDIATE now, while the flag is set
            finally:
                _begin_immediate.reset(token)
            yield session

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
