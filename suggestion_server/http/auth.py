"""Authentication exactly as the wire (§3): HTTP Basic with the token as the username.

No header → 401; a header that is not parseable Basic (e.g. Bearer) → 400; an unknown token → 403
with ``token_status: "revoked"``, also for a revoked token and for the previous value of a
rotated token once its grace is over. Known tokens are cached per process for a short time so
that a request pays no extra query (the previous value of a rotated token no longer than its
grace); the lookup itself runs in the thread pool. A token scoped to one experiment is then
checked against the route (``token_scope.py``): 403 outside its scope.

Every such 401/403 is logged with its reason, the token's id when known and the route (never
the token), and counted per reason for the page's health view (``refusal_log.py``); the caller
gets the same answer as before, whatever the reason.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Mapping

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from suggestion_server.http.refusal_log import NO_TOKEN, refuse
from suggestion_server.http.token_scope import WRONG_SCOPE, check_scope
from suggestion_server.services.context import ServerContext
from suggestion_server.storage.tokens import Grant, Refusal, resolve_token
from suggestion_server.wire.errors import ApiError

HOW = "via HTTP Basic Auth, with the API token as the username and a blank password."
CACHE_TTL_S = 60.0


class TokenCache:
    """token → grant: positive lookups only, so a new token works at once (and a revoked one
    stops working within ``ttl_s``). An entry is fresh for ``ttl_s`` by the monotonic clock and
    by the server's clock (which tests set), and a rotated token's previous value no longer
    than its grace."""

    def __init__(self, ttl_s: float = CACHE_TTL_S) -> None:
        self._ttl_s = ttl_s
        self._entries: dict[str, tuple[Grant, float, float]] = {}
        self._lock = threading.Lock()

    def get(self, token: str, now: float) -> Grant | None:
        """The cached grant, if fresh at ``now`` (the server's clock)."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        grant, expires, cached_at = entry
        if expires < time.monotonic() or not cached_at <= now < cached_at + self._ttl_s:
            return None
        if grant.until is not None and now >= grant.until:
            return None
        return grant

    def put(self, token: str, grant: Grant, now: float) -> None:
        """Remember a token resolved at ``now`` (the server's clock)."""
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[token] = (grant, time.monotonic() + self._ttl_s, now)


def token_from_header(header: str | None) -> str:
    """The token inside an ``Authorization`` header, or the wire's 401/400."""
    if header is None:
        raise ApiError(401, f"No API token provided. Please provide an API token {HOW}")
    unparseable = ApiError(400, f"Could not parse API token. Please provide an API token {HOW}")
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise unparseable
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise unparseable from None
    token, sep, _password = decoded.partition(":")
    if not sep or not token or "\x00" in token:
        raise unparseable
    return token


async def authenticated_client(request: Request) -> int:
    """FastAPI dependency: the id of the client whose token authenticates the request, once
    the token's scope allows the matched route."""
    route = request.scope.get("route")
    return await authorized_client(
        request, getattr(route, "path_format", None), request.path_params
    )


async def authorized_client(
    request: Request, template: str | None, path_params: Mapping[str, str]
) -> int:
    """The client of the request's token, checked against the route ``template`` (its path
    parameters ``path_params``); the grant is left in ``request.state.grant``."""
    ctx: ServerContext = request.app.state.context
    route = template or request.url.path
    try:
        token = token_from_header(request.headers.get("authorization"))
    except ApiError as missing:
        if missing.status == 401:
            raise refuse(request.app, missing, NO_TOKEN, None, request.method, route) from None
        raise
    cache: TokenCache = request.app.state.token_cache
    now = ctx.clock()
    grant = cache.get(token, now)
    if grant is None:
        found = await run_in_threadpool(resolve_token, ctx.store, token, now)
        if isinstance(found, Refusal):
            invalid = ApiError(
                403,
                f"This endpoint requires a valid API token. Please provide an API token {HOW}",
                token_status="revoked",  # noqa: S106 (a status, not a secret)
            )
            raise refuse(request.app, invalid, found.reason, found.token_id, request.method, route)
        grant = found
        cache.put(token, grant, now)
    try:
        await check_scope(ctx, grant, request.method, template, path_params)
    except ApiError as error:
        if error.status != 403:
            raise
        raise refuse(
            request.app, error, WRONG_SCOPE, grant.token_id, request.method, route
        ) from None
    request.state.grant = grant
    return grant.client_id
