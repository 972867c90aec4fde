"""Which database failures are a retryable 503 and which are bugs (500): a retry cures a
locked, full or unreachable database, never a missing table or bad SQL."""

from __future__ import annotations

import json
import sqlite3

import psycopg
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from suggestion_server.wire.errors import database_error_response


def _status(exc: Exception) -> int:
    response = database_error_response("POST", "/v1/x", exc)  # type: ignore[arg-type]
    body = json.loads(bytes(response.body))
    assert body["status"] == response.status_code
    if response.status_code == 503:
        assert response.headers["retry-after"] == "1"
    return response.status_code


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (OperationalError("x", {}, sqlite3.OperationalError("database is locked")), 503),
        (OperationalError("x", {}, sqlite3.OperationalError("unable to open database file")), 503),
        (OperationalError("x", {}, sqlite3.OperationalError("no such table: suggestions")), 500),
        (OperationalError("x", {}, sqlite3.OperationalError('near "SELCT": syntax error')), 500),
        (IntegrityError("x", {}, sqlite3.IntegrityError("UNIQUE constraint failed")), 500),
        (OperationalError("x", {}, psycopg.OperationalError("connection refused")), 503),
        (OperationalError("x", {}, psycopg.errors.TooManyConnections("too many clients")), 503),
        (OperationalError("x", {}, psycopg.errors.AdminShutdown("terminating connection")), 503),
        (
            OperationalError("x", {}, psycopg.errors.SerializationFailure("could not serialize")),
            503,
        ),
        (ProgrammingError("x", {}, psycopg.errors.UndefinedTable("no such relation")), 500),
        (OperationalError("x", {}, psycopg.errors.ProgramLimitExceeded("row too big")), 500),
        (PoolTimeoutError("QueuePool limit reached"), 503),
    ],
)
def test_retryable_database_failures_are_503(exc: Exception, status: int) -> None:
    assert _status(exc) == status
