"""API tokens: generated, stored hashed (sha256), resolved to the client that owns them and to
the one experiment they are scoped to (None: an operator token with every right of its client).

Rotation gives a token a new value and keeps the old one's hash on the row, accepted until a
deadline (the grace), so a fleet can pick up the new value without a failed request. Hashes that
no longer authenticate (revoked tokens, values rotated out) are kept apart, so that a refusal
can name its reason and token in the server's log; the caller learns nothing from it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from suggestion_server.storage.database import Store
from suggestion_server.storage.models import (
    Client,
    Experiment,
    RetiredTokenHash,
    Token,
    TrainingRun,
)

DEFAULT_GRACE_S = 3600
# Why a token was refused (the log's and the page's words; the caller is told none of them).
UNKNOWN = "unknown_token"
REVOKED = "revoked_token"
ROTATED_OUT = "rotated_out"


@dataclass(frozen=True)
class Grant:
    """What a token may do: act as ``client_id``, on ``experiment_id`` only when that is set.

    ``until``: the previous value of a rotated token, accepted until then (Unix seconds)."""

    client_id: int
    experiment_id: int | None = None
    token_id: int | None = None
    until: int | None = None


@dataclass(frozen=True)
class Refusal:
    """Why a token does not authenticate: ``reason`` (one of the constants above) and the
    token it was a value of, when known."""

    reason: str
    token_id: int | None = None


@dataclass(frozen=True)
class TokenInfo:
    """A stored token as the operator sees it (never the token itself: only its hash is kept)."""

    id: int
    name: str
    client_id: int
    experiment_id: int | None
    created: int
    rotated: int | None = None
    previous_until: int | None = None

    @property
    def scope(self) -> str:
        """``experiment <id>`` or ``operator`` (every experiment of the client)."""
        return "operator" if self.experiment_id is None else f"experiment {self.experiment_id}"


class UnknownExperiment(LookupError):
    """``create_token(experiment_id=...)`` names an experiment that does not exist."""


def token_hash(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class RetiredToken(ValueError):
    """``register_token`` was given a value that was revoked or rotated out."""


def resolve_token(store: Store, token: str, now: float | None = None) -> Grant | Refusal:
    """What ``token`` may do at ``now`` (default: the current time), or why it may not."""
    hashed = token_hash(token)
    at = time.time() if now is None else now
    with store.read() as session:
        row = session.execute(
            select(
                Token.id,
                Token.client_id,
                Token.experiment_id,
                Token.token_hash,
                Token.previous_until,
            ).where(or_(Token.token_hash == hashed, Token.previous_hash == hashed))
        ).first()
        if row is None:
            retired = session.execute(
                select(RetiredTokenHash.reason, RetiredTokenHash.token_id).where(
                    RetiredTokenHash.token_hash == hashed
                )
            ).first()
            if retired is None:
                return Refusal(UNKNOWN)
            return Refusal(str(retired[0]), int(retired[1]))
    token_id, client_id, scope = int(row[0]), int(row[1]), row[2]
    experiment_id = None if scope is None else int(scope)
    if row[3] == hashed:
        return Grant(client_id, experiment_id, token_id)
    until = int(row[4] or 0)
    if at < until:
        return Grant(client_id, experiment_id, token_id, until)
    return Refusal(ROTATED_OUT, token_id)


def grant_for_token(store: Store, token: str, now: float | None = None) -> Grant | None:
    """The client and scope of a token, or None for a token that does not authenticate."""
    found = resolve_token(store, token, now)
    return found if isinstance(found, Grant) else None


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
    already registered; return its client id. Idempotent, also across concurrent starts.

    A value that was revoked or rotated out is not registered again (that would bring it back
    to life): :class:`RetiredToken`."""
    found = resolve_token(store, token)
    if isinstance(found, Grant):
        return found.client_id
    if found.reason != UNKNOWN:
        how = "revoked" if found.reason == REVOKED else "replaced by a rotation"
        raise RetiredToken(
            f"the token given for {name!r} was {how} (token {found.token_id}): give its current "
            "value (printed by optfleet token rotate) or a new token"
        )
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
        registered = client_for_token(store, token)
        if registered is None:
            raise
        return registered


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
    return TokenInfo(
        row.id,
        row.name,
        row.client_id,
        row.experiment_id,
        row.created,
        row.rotated,
        row.previous_until,
    )


def list_tokens(store: Store) -> list[TokenInfo]:
    """Every stored token, oldest first."""
    with store.read() as session:
        return [_info(row) for row in session.scalars(select(Token).order_by(Token.id))]


def token_info(store: Store, token_id: int) -> TokenInfo | None:
    """One stored token by its id, or None."""
    with store.read() as session:
        row = session.get(Token, token_id)
        return None if row is None else _info(row)


def _retire(session: Session, hashed: str, token_id: int, reason: str, now: int) -> None:
    """Remember that ``hashed`` (a value of ``token_id``) no longer authenticates, and why."""
    session.merge(
        RetiredTokenHash(token_hash=hashed, token_id=token_id, reason=reason, retired=now)
    )


def rotate_token(
    store: Store,
    token_id: int,
    grace_s: int = DEFAULT_GRACE_S,
    now: float | None = None,
    client_id: int | None = None,
) -> tuple[str, TokenInfo] | None:
    """Give the token a new value and return it (shown only once) with the token as it is now,
    or None when there is no such token (of ``client_id``, when given). Name, scope and client
    stay; the value it replaces is accepted ``grace_s`` seconds more (from ``now``, default the
    current time); a value replaced before that is refused from now on."""
    if grace_s < 0:
        raise ValueError(f"grace_s: expected seconds >= 0, got {grace_s}")
    at = int(time.time() if now is None else now)
    token = secrets.token_urlsafe(32)
    with store.write() as session:
        row = session.scalars(select(Token).where(Token.id == token_id).with_for_update()).first()
        if row is None or (client_id is not None and row.client_id != client_id):
            return None
        if row.previous_hash is not None:
            _retire(session, row.previous_hash, token_id, ROTATED_OUT, at)
        row.previous_hash = row.token_hash
        row.previous_until = at + grace_s
        row.token_hash = token_hash(token)
        row.rotated = at
        session.flush()
        return token, _info(row)


def revoke_token(store: Store, token_id: int) -> TokenInfo | None:
    """Delete the token with this id: its values (the current one and a rotated one still in
    its grace) are refused from then on, and the web page's sessions made with it end; the
    token as it was, or None."""
    now = int(time.time())
    with store.write() as session:
        row = session.get(Token, token_id)
        if row is None:
            return None
        info = _info(row)
        session.execute(
            update(RetiredTokenHash)
            .where(RetiredTokenHash.token_id == token_id)
            .values(reason=REVOKED)
        )
        for hashed in (row.token_hash, row.previous_hash):
            if hashed is not None:
                _retire(session, hashed, token_id, REVOKED, now)
        session.execute(delete(Token).where(Token.id == token_id))
        return info
