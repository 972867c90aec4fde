"""Database engine and transactions: how a request gets a session.

SQLite: WAL, ``busy_timeout``, ``synchronous=NORMAL``, foreign keys on. Write transactions start
with ``BEGIN IMMEDIATE`` (so a transaction never has to upgrade a read lock, the classic source of
"database is locked"), and inside one process they also queue on a lock first, so threads wait on a
cheap in-process lock instead of SQLite's sleeping busy handler. PostgreSQL: a pool that pings
only connections that sat idle; per-experiment serialization is a row lock taken by the services
(``lock_experiment``).
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker

from suggestion_server.config import normalize_db_url

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Pooled connections per server process (``--db-pool-size``).
DB_POOL_SIZE = 32
# A pooled PostgreSQL connection idle for longer than this is pinged before use.
PING_IF_IDLE_S = 2.0

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


def make_engine(db_url: str, pool_size: int = DB_POOL_SIZE) -> Engine:
    """Create the SQLAlchemy engine for ``db_url``; the pool keeps ``pool_size`` connections
    (one per concurrent request: overflow connections are closed on check-in, and re-opening
    them under load costs more than the request) and opens up to half as many more at peaks."""
    url = normalize_db_url(db_url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=60,
        )
        _configure_sqlite(engine)
        return engine
    engine = create_engine(
        url, pool_size=pool_size, max_overflow=max(pool_size // 2, 1), pool_timeout=60
    )
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """``pool_pre_ping``, but only for connections idle longer than ``PING_IF_IDLE_S``.

    The ping is a round trip, as costly as a statement. Under load connections are never idle
    and need none: when the database restarts, the first request on a dead connection fails, and
    SQLAlchemy then invalidates every connection opened before it, so the next ones reconnect.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_IF_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            if not engine.dialect.is_disconnect(exc, dbapi_connection, None):
                raise
            # The database went away: the pool discards every connection opened before now and
            # checks out a fresh one.
            raise InvalidatePoolError(str(exc)) from exc


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

    @contextmanager
    def write_statement(self) -> Iterator[Connection]:
        """A connection for one self-contained write statement, committed at the end.

        PostgreSQL runs it in autocommit: one round trip instead of BEGIN, statement, COMMIT.
        SQLite runs it in the serialized write transaction of ``write()``.
        """
        if self.is_sqlite:
            with self.write() as session:
                yield session.connection()
            return
        with self.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT")
            yield connection

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
