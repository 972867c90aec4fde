"""The writes a fleet makes most, answered without FastAPI's router and dependency solver.

Every worker asks for suggestions, renews its lease (PUT a suggestion's metadata) and reports
observations; one that reports progress also creates its suggestion's training run and posts a
checkpoint per step, several per observation (issue 21's load target). Profiled, FastAPI's
route matching and dependency resolution cost ≈ 1.2 ms of CPU per request, more than the
database work of any of these writes (a suggestion is usually a pooled entry taken in one short
write), and one process's CPU is what caps writes per second.
This plain ASGI layer matches those paths with a regex each and calls the same functions the
routes call (NUL check, auth, strict JSON body, schema validation, service, render), in the
same order, so the responses are the same; every other request goes on to the FastAPI app.
The routes stay in place: they document the endpoints in /openapi.json.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from suggestion_server.http import checkpoint_batches
from suggestion_server.http.auth import authorized_client
from suggestion_server.http.routes.common import path_id, reject_nul_in_query, render
from suggestion_server.services import observations as observation_service
from suggestion_server.services import suggestions as suggestion_service
from suggestion_server.services import training_runs as training_run_service
from suggestion_server.services.checkpoints import CheckpointPost
from suggestion_server.services.context import ServerContext
from suggestion_server.wire.errors import ApiError, database_error_response, error_response
from suggestion_server.wire.jsonbody import json_body
from suggestion_server.wire.schemas import (
    ObservationCreate,
    SuggestionCreate,
    SuggestionUpdate,
    validate_body,
)
from suggestion_server.wire.training_runs import CheckpointCreate, TrainingRunCreate

# (client id, path ids, parsed JSON body) -> the response payload; runs in the thread pool.
Write = Callable[[ServerContext, int, tuple[str, ...], Any], dict[str, Any]]


def _create_observation(
    ctx: ServerContext, client: int, ids: tuple[str, ...], body: Any
) -> dict[str, Any]:
    spec = validate_body(ObservationCreate, body)
    return observation_service.create_observation(ctx, client, path_id(ids[0]), spec)


def _update_suggestion(
    ctx: ServerContext, client: int, ids: tuple[str, ...], body: Any
) -> dict[str, Any]:
    change = validate_body(SuggestionUpdate, body)
    return suggestion_service.update_suggestion(
        ctx, client, path_id(ids[0]), path_id(ids[1]), change
    )


def _create_suggestion(
    ctx: ServerContext, client: int, ids: tuple[str, ...], body: Any
) -> dict[str, Any]:
    spec = validate_body(SuggestionCreate, body)
    return suggestion_service.create_suggestion(ctx, client, path_id(ids[0]), spec)


def _create_training_run(
    ctx: ServerContext, client: int, ids: tuple[str, ...], body: Any
) -> dict[str, Any]:
    spec = validate_body(TrainingRunCreate, body)
    return training_run_service.create_training_run(ctx, client, path_id(ids[0]), spec)


def _experiment_run_checkpoint(client: int, ids: tuple[str, ...], body: Any) -> CheckpointPost:
    spec = validate_body(CheckpointCreate, body)
    return CheckpointPost(client, path_id(ids[1]), spec, path_id(ids[0]))


def _run_checkpoint(client: int, ids: tuple[str, ...], body: Any) -> CheckpointPost:
    spec = validate_body(CheckpointCreate, body)
    return CheckpointPost(client, path_id(ids[0]), spec)


# A checkpoint post goes to the group-committing writer (checkpoint_batches.py), not the pool.
PostOf = Callable[[int, tuple[str, ...], Any], CheckpointPost]
CHECKPOINT_POSTS: dict[str, PostOf] = {
    "/v1/experiments/{experiment_id}/training_runs/{run_id}/checkpoints": (
        _experiment_run_checkpoint
    ),
    "/v1/training_runs/{run_id}/checkpoints": _run_checkpoint,
}


def _checkpoint_post(
    ctx: ServerContext, client: int, ids: tuple[str, ...], body: Any
) -> dict[str, Any]:
    """A placeholder in ``HOT_WRITES``: ``_serve`` hands these posts to the writer."""
    raise AssertionError("checkpoint posts are served by checkpoint_batches")


_EXP = "/v1/experiments/{experiment_id}"
# method -> (route template, write): the template as the FastAPI route spells it (token scopes
# are checked against it, token_scope.py); each ``{name}`` matches digits.
HOT_WRITES: dict[str, list[tuple[str, Write]]] = {
    "POST": [
        (f"{_EXP}/observations", _create_observation),
        (f"{_EXP}/suggestions", _create_suggestion),
        (f"{_EXP}/training_runs", _create_training_run),
        *((template, _checkpoint_post) for template in CHECKPOINT_POSTS),
    ],
    "PUT": [(f"{_EXP}/suggestions/{{suggestion_id}}", _update_suggestion)],
}
_PATTERNS = {
    template: re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[0-9]+)", template))
    for writes in HOT_WRITES.values()
    for template, _ in writes
}


def _matching(scope: Scope) -> tuple[Write, str, dict[str, str]] | None:
    """The hot write a request is for, with its route template and path ids, or None."""
    if scope["type"] != "http":
        return None
    for template, write in HOT_WRITES.get(scope.get("method", ""), ()):
        match = _PATTERNS[template].fullmatch(scope["path"])
        if match is not None:
            return write, template, match.groupdict()
    return None


class HotWrites:
    """ASGI middleware: serves ``HOT_WRITES`` itself, passes everything else to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = _matching(scope)
        if hot is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await _serve(request, *hot)
        except ApiError as exc:
            response = error_response(exc.status, exc.message, **exc.extra)
        except SQLAlchemyError as exc:  # as the app's handler answers it for the routes
            response = database_error_response(request.method, scope["path"], exc)
        await response(scope, receive, send)


async def _serve(request: Request, write: Write, template: str, params: dict[str, str]) -> Response:
    """The route's steps in the route's order; ``ApiError`` from any of them is the answer."""
    if request.scope.get("query_string"):  # nothing to check without one (most requests)
        await reject_nul_in_query(request)
    client = await authorized_client(request, template, params)
    path_ids = tuple(params.values())
    body = await json_body(request)
    ctx: ServerContext = request.app.state.context
    post_of = CHECKPOINT_POSTS.get(template)
    if post_of is not None:
        post = post_of(client, path_ids, body)
        payload = await checkpoint_batches.for_app(request.app.state, ctx).create(post)
    elif write is _create_suggestion:
        # As the route: counted from arrival, also while queued for a worker thread (the
        # pool's demand signal). The id was matched as digits; path_id still checks its range.
        validate_body(SuggestionCreate, body)
        with ctx.pool.asking(path_id(path_ids[0])):
            payload = await run_in_threadpool(write, ctx, client, path_ids, body)
    else:
        payload = await run_in_threadpool(write, ctx, client, path_ids, body)
    return render(request, payload, request.query_params.get("fields"))
