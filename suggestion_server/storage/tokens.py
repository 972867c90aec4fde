"""API tokens: generated, stored hashed (sha256), resolved to the client that owns them and to
the one experiment they are scoped to (None: an operator token with every right of its client).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from suggestion_server.storage.database import Store
from suggestion_server.storage.models import Client, Experiment, Token, TrainingRun


@dataclass(frozen=True)
class Grant:
    """What a token may do: act as ``client_id``, on ``experiment_id`` only when that is set."""

    client_id: int
    experiment_id: int | None = None


@dataclass(frozen=True)
class TokenInfo:
    """A stored token as the operator sees it (never the token itself: only its hash is kept)."""

    id: int
    name: str
    client_id: int
    experiment_id: int | None
    created: int

    @property
    def scope(self) -> str:
        """``experiment <id>`` or ``operator`` (every experiment of the client)."""
        return "operator" if self.experiment_id is None else f"experiment {self.experiment_id}"


class UnknownExperiment(LookupError):
    """``create_token(experiment_id=...)`` names an experiment that does not exist."""


def token_hash(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def grant_for_token(store: Store, token: str) -> Grant | None:
    """The client and scope of a token, or None for an unknown (or revoked) token."""
    with store.read() as session:
        row = session.execute(
            select(Token.client_id, Token.experiment_id).where(
                Token.token_hash == token_hash(token)
            )
        ).first()
    return None if row is None else Grant(int(row[0]), None if row[1] is None else int(row[1]))


def client_for_token(store: Store, token: str) -> int | None:
    """The id of the client the token belongs to, or None for an unknown token."""
    grant = grant_for_token(store, token)
    return None if grant is None else grant.client_id


def experiment_of_run(store: Store, run_id: int) -> int | None:
    """The experiment a training run belongs to (None: no such run, or a run of no experiment)."""
    with store.read() as session:
        found = session.scalar(select(TrainingRun.experiment_id).where(TrainingRun.id == run_id))
    return None if found is None else int(found)


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


def create_token(store: Store, name: str, experiment_id: int | None = None) -> str:
    """Generate a new token and return it (shown only once): for a new client named ``name``,
    or, with ``experiment_id``, scoped to that experiment of its client (raises
    :class:`UnknownExperiment` when there is no such experiment)."""
    token = secrets.token_urlsafe(32)
    if experiment_id is None:
        register_token(store, token, name)
        return token
    with store.write() as session:
        client_id = session.scalar(
            select(Experiment.client_id).where(Experiment.id == experiment_id)
        )
        if client_id is None:
            raise UnknownExperiment(f"no experiment {experiment_id}")
        session.add(
            Token(
                client_id=client_id,
                token_hash=token_hash(token),
                name=name,
                created=int(time.time()),
                experiment_id=experiment_id,
            )
        )
    return token


def _info(row: Token) -> TokenInfo:
    return TokenInfo(row.id, row.name, row.client_id, row.experiment_id, row.created)


def list_tokens(store: Store) -> list[TokenInfo]:
    """Every stored token, oldest first."""
    with store.read() as session:
        return [_info(row) for row in session.scalars(select(Token).order_by(Token.id))]


def token_info(store: Store, token_id: int) -> TokenInfo | None:
    """One stored token by its id, or None."""
    with store.read() as session:
        row = session.get(Token, token_id)
        return None if row is None else _info(row)


def revoke_token(store: Store, token_id: int) -> TokenInfo | None:
    """Delete the token with this id (its hash is forgotten: the token is unknown from then on,
    and the web page's sessions made with it end); the token as it was, or None."""
    with store.write() as session:
        row = session.get(Token, token_id)
        if row is None:
            return None
        info = _info(row)
        session.execute(delete(Token).where(Token.id == token_id))
        return info
