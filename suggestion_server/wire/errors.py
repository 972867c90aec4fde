"""The API's errors: ``ApiError`` raised anywhere, rendered as ``{"message", "status"}``.

Also maps what FastAPI/Starlette raise on their own (unknown route, wrong method, invalid query or
path parameter) onto the SigOpt wire's statuses and messages, so FastAPI's 422 never appears.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

log = logging.getLogger("suggestion_server")

NOT_FOUND_MESSAGE = "The requested resource could not be found"
DATABASE_UNAVAILABLE_MESSAGE = (
    "The server's database is unavailable or overloaded right now; retry the request"
)
RETRY_AFTER_S = 1


class ApiError(Exception):
    """An error the client caused (or may act on), with the wire's status and message;
    ``headers`` go on the response (a 301's ``Location``)."""

    def __init__(
        self, status: int, message: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra


def bad_request(message: str) -> ApiError:
    """400 with ``message``."""
    return ApiError(400, message)


def not_found(message: str = NOT_FOUND_MESSAGE) -> ApiError:
    """404 (also used for objects of another client, so their existence does not leak)."""
    return ApiError(404, message)


def error_response(status: int, message: str, **extra: Any) -> Response:
    """The wire's error body."""
    body = {"message": message, "status": status, **extra}
    return Response(
        json.dumps(body), status_code=status, media_type="application/json; charset=utf-8"
    )


# SQLite: another writer holds the file too long, or the file cannot be used right now.
SQLITE_UNAVAILABLE = (
    "database is locked",
    "database is busy",
    "unable to open database file",
    "disk i/o error",
    "database or disk is full",
)
# PostgreSQL SQLSTATE classes: connection exception, insufficient resources (too many
# connections), serialization failure / deadlock; and shutdown / starting up (57P01-57P03).
POSTGRES_UNAVAILABLE_CLASSES = ("08", "53", "40")


def _database_unavailable(exc: SQLAlchemyError) -> bool:
    """A failure a retry can cure; schema or SQL bugs (also ``OperationalError``s) are not."""
    if isinstance(exc, PoolTimeoutError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if hasattr(orig, "sqlstate"):  # psycopg; no SQLSTATE when the connection itself failed
        state: str | None = getattr(orig, "sqlstate", None)
        if state is None:
            return isinstance(exc, OperationalError)
        return state[:2] in POSTGRES_UNAVAILABLE_CLASSES or state in ("57P01", "57P02", "57P03")
    text = str(orig).lower()
    return isinstance(exc, OperationalError) and any(s in text for s in SQLITE_UNAVAILABLE)


def database_error_response(method: str, path: str, exc: SQLAlchemyError) -> Response:
    """A database that is down, restarting or out of connections is a retryable 503; any other
    database error is a bug (500). Both are logged with the cause, which the client never sees."""
    if _database_unavailable(exc):
        log.warning("database unavailable on %s %s: %s", method, path, str(exc).splitlines()[0])
        response = error_response(503, DATABASE_UNAVAILABLE_MESSAGE)
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response
    log.error("database error on %s %s", method, path, exc_info=exc)
    return error_response(500, "An unexpected server error has occurred.")


def endpoint_not_found_message(path: str) -> str:
    """The wire's 404 message for a path that matches no route."""
    if path.startswith("/v1/") or path == "/v1":
        return f"Endpoint not found: {path}"
    return f"Endpoint not found: {path}. (Endpoint paths must begin with /v1)"


def _describe_validation_error(err: dict[str, Any]) -> str:
    loc = [str(part) for part in err.get("loc", ())]
    where, name = (loc[0], ".".join(loc[1:])) if loc else ("request", "")
    value = err.get("input")
    expected = str(err.get("msg", "invalid value"))
    kind = "query parameter" if where == "query" else "header" if where == "header" else where
    return f"Invalid value for {kind} {name}: {value!r} - {expected}"


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the wire's error body."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> Response:
        response = error_response(exc.status, exc.message, **exc.extra)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        if any(err.get("loc", ("",))[0] == "path" for err in errors):
            # Ids are integers in the route: anything else matches no endpoint.
            return error_response(404, endpoint_not_found_message(request.url.path))
        return error_response(400, "; ".join(_describe_validation_error(e) for e in errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return error_response(404, endpoint_not_found_message(request.url.path))
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            methods = [m.strip() for m in allowed.split(",") if m.strip()]
            return error_response(
                405, f"This endpoint accepts only the following methods: {methods}"
            )
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(SQLAlchemyError)
    async def _database_error(request: Request, exc: SQLAlchemyError) -> Response:
        return database_error_response(request.method, request.url.path, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "An unexpected server error has occurred.")
