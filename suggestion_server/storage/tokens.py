"""API tokens: generated, stored hashed (sha256), resolved to the client that owns them."""

from __future__ import annotations

import hashlib
import secrets
import time

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from suggestion_server.storage.database import Store
from suggestion_server.storage.models import Client, Token


def token_hash(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def client_for_token(store: Store, token: str) -> int | None:
    """The id of the client the token belongs to, or None for an unknown token."""
    with store.read() as session:
        return session.scalar(select(Token.client_id).where(Token.token_hash == token_hash(token)))


def register_token(store: Store, token: str, name: str, client_name: str | None = None) -> int:
    """Store ``token`` for a new client named ``client_name`` (default ``name``) unless it is
    already registered; return its client id. Idempotent, also across concurrent starts."""
    existing = client_for_token(store, token)
    if existing is not None:
        return existing
    now = int(time.time())
    try:
        with store.write() as session:
            client = Client(name=client_name or name, created=now)
            session.add(client)
            session.flush()
            session.add(
                Token(client_id=client.id, token_hash=token_hash(token), name=name, created=now)
            )
            return client.id
    except IntegrityError:
        # Another process registered the same token at the same moment.
        found = client_for_token(store, token)
        if found is None:
            raise
        return found


def create_token(store: Store, name: str) -> str:
    """Generate a new token for a new client named ``name`` and return it (shown only once)."""
    token = secrets.token_urlsafe(32)
    register_token(store, token, name)
    return token
