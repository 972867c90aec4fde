"""``POST /v1/tokens/{token_id}/rotate``: an operator token rotates a token of its client
(docs/api.md, "Token rotation"); what a scheduled rotation function calls (docs/infra.md).

Experiment-scoped tokens get the scope 403 (the route is not in ``token_scope.py``), so a stolen
instance token cannot keep itself alive by rotating; another client's token is a 404, as for
experiments.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from suggestion_server.http.routes.common import ClientId, Ctx, IdPath, JsonBody, path_id, render
from suggestion_server.storage.tokens import DEFAULT_GRACE_S, rotate_token
from suggestion_server.wire.errors import bad_request, not_found
from suggestion_server.wire.jsonbody import json_object, short_json

router = APIRouter(tags=["tokens"])
MAX_GRACE_S = 7 * 24 * 3600
MISSING_MESSAGE = "There is no such token for this API token's client"


def grace_of(body: Any) -> int:
    """``grace_seconds`` of the body (absent, or no body: the default); a 400 naming it."""
    if body is None:
        return DEFAULT_GRACE_S
    fields = json_object(body, "the request body")
    grace = fields.get("grace_seconds", DEFAULT_GRACE_S)
    if isinstance(grace, bool) or not isinstance(grace, int) or not 0 <= grace <= MAX_GRACE_S:
        raise bad_request(
            f"Invalid value for grace_seconds: {short_json(grace)} - expected whole seconds "
            f"from 0 to {MAX_GRACE_S}"
        )
    unknown = sorted(set(fields) - {"grace_seconds"})
    if unknown:
        raise bad_request(f"Unknown field {unknown[0]!r}: expected only grace_seconds")
    return grace


# Not in /openapi.json: SigOpt has no such route, and a client walking the schema with the
# operator token (a fuzzer) must not rotate that token away.
@router.post("/v1/tokens/{token_id}/rotate", include_in_schema=False)
async def rotate(
    request: Request, ctx: Ctx, client_id: ClientId, token_id: IdPath, body: JsonBody
) -> Response:
    """A new value for the token (answered once); the previous one is accepted
    ``grace_seconds`` more (default 3600)."""
    grace = grace_of(body)
    rotated = await run_in_threadpool(
        rotate_token, ctx.store, path_id(token_id), grace, ctx.clock(), client_id
    )
    if rotated is None:
        raise not_found(MISSING_MESSAGE)
    value, info = rotated
    return render(
        request,
        {
            "object": "token_rotation",
            "id": str(info.id),
            "token": value,
            "client": str(info.client_id),
            "experiment": None if info.experiment_id is None else str(info.experiment_id),
            "rotated": info.rotated,
            "previous_accepted_until": info.previous_until,
        },
    )
