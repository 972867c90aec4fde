"""A refused request (401/403 about its token): one precise log line and one more in its
reason's count; the caller's answer is left exactly as it was.

The line names the reason, the token's id when the server knows it, the method and the route
template (never the path's values nor the token itself), so an operator can tell a stolen
value of a revoked token from a fleet still holding a rotated-out one.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool

from suggestion_server.services.context import ServerContext
from suggestion_server.storage.refusals import count_refusal
from suggestion_server.wire.errors import ApiError

NO_TOKEN = "no_token"  # noqa: S105 (a reason: no Authorization header, 401)

log = logging.getLogger("suggestion_server.auth")


async def refuse(
    ctx: ServerContext,
    error: ApiError,
    reason: str,
    token_id: int | None,
    method: str,
    route: str,
) -> ApiError:
    """Log and count the refusal; return ``error`` for the caller to raise."""
    token = "unknown" if token_id is None else str(token_id)
    log.warning(
        "refused %d: reason=%s token_id=%s route=%s %s",
        error.status,
        reason,
        token,
        method,
        route[:200],
    )
    try:
        await run_in_threadpool(count_refusal, ctx.store, reason, ctx.now())
    except Exception as exc:  # the count is a figure for the page, never a reason to fail
        log.warning("refusal not counted (reason=%s): %s", reason, type(exc).__name__)
    return error
