"""Authentication exactly as the wire (§3): HTTP Basic with the token as the username.

No header → 401; a header that is not parseable Basic (e.g. Bearer) → 400; an unknown token → 403
with ``token_status: "revoked"``. Known tokens are cached per process for a short time so that a
request pays no extra query; the lookup itself runs in the thread pool. A token scoped to one
experiment is then checked against the route (``token_scope.py``): 403 outside its scope.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Mapping

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from suggestion_server.http.token_scope import check_scope
from suggestion_server.services.context import ServerContext
from suggestion_server.storage.tokens import Grant, grant_for_token
from suggestion_server.wire.errors import ApiError

HOW = "via HTTP Basic Auth, with the API token as the username and a blank password."
CACHE_TTL_S = 60.0


class TokenCache:
    """token → (grant, expiry): positive lookups only, so a new token works at once (and a
    revoked one stops working within ``ttl_s``)."""

    def __init__(self, ttl_s: float = CACHE_TTL_S) -> None:
        self._ttl_s = ttl_s
        self._entries: dict[str, tuple[Grant, float]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> Grant | None:
        """The cached grant, if fresh."""
        entry = self._entries.get(token)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, token: str, grant: Grant) -> None:
        """Remember a resolved token."""
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[token] = (grant, time.monotonic() + self._ttl_s)


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
    token = token_from_header(request.headers.get("authorization"))
    ctx: ServerContext = request.app.state.context
    cache: TokenCache = request.app.state.token_cache
    grant = cache.get(token)
    if grant is None:
        grant = await run_in_threadpool(grant_for_token, ctx.store, token)
        if grant is None:
            raise ApiError(
                403,
                f"This endpoint requires a valid API token. Please provide an API token {HOW}",
                token_status="revoked",  # noqa: S106 (a status, not a secret)
            )
        cache.put(token, grant)
    await check_scope(ctx, grant, request.method, template, path_params)
    request.state.grant = grant
    return grant.client_id
