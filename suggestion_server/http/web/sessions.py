"""Sign-in sessions: a signed cookie that never contains the API token.

The cookie value is ``<token row id>.<expiry>.<hmac>``. The HMAC key is derived from the token's
stored hash (and ``OPTFLEET_WEB_SECRET`` when set), which only the server and the token's holder
can know: any server process over the same database verifies it without shared state, a cookie
cannot be forged for a token you do not hold, and removing the token ends its sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from dataclasses import dataclass

COOKIE_NAME = "optfleet_session"
SESSION_TTL_S = 12 * 3600
SECRET_ENV = "OPTFLEET_WEB_SECRET"  # noqa: S105 (the name of a variable)


@dataclass(frozen=True)
class SessionClaim:
    """What a cookie says before it is verified: the token row and the expiry."""

    token_id: int
    expires: int
    mac: str


def _key(token_hash: str) -> bytes:
    secret = os.environ.get(SECRET_ENV, "")
    return hashlib.sha256(f"optfleet-web-session\x00{secret}\x00{token_hash}".encode()).digest()


def _mac(token_hash: str, token_id: int, expires: int) -> str:
    message = f"{token_id}.{expires}".encode()
    return hmac.new(_key(token_hash), message, hashlib.sha256).hexdigest()


def session_cookie_value(
    token_id: int, token_hash: str, now: float | None = None, ttl_s: int = SESSION_TTL_S
) -> str:
    """A signed cookie value for the token with row id ``token_id``."""
    expires = int((time.time() if now is None else now) + ttl_s)
    return f"{token_id}.{expires}.{_mac(token_hash, token_id, expires)}"


def parse_cookie(value: str | None, now: float | None = None) -> SessionClaim | None:
    """The claim in a cookie value, or None when it is malformed or expired."""
    if not value:
        return None
    parts = value.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    claim = SessionClaim(token_id=int(parts[0]), expires=int(parts[1]), mac=parts[2])
    if claim.expires < (time.time() if now is None else now):
        return None
    return claim


def verify(claim: SessionClaim, token_hash: str) -> bool:
    """True when ``claim`` was signed for the token whose stored hash is ``token_hash``."""
    expected = _mac(token_hash, claim.token_id, claim.expires)
    return hmac.compare_digest(expected, claim.mac)
