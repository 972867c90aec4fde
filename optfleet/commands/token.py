"""`optfleet token create|list|show|rotate|revoke [--db URL]`: API tokens of the server's database.

``create`` prints a new token (only once: the database keeps its sha256); ``--experiment ID``
scopes it to that one experiment (what a fleet's instances should hold, docs/api.md).
``rotate ID`` gives a token a new value (printed once, like ``create``) and keeps name, scope and
client; the previous value is accepted ``--grace`` seconds more, so a fleet can switch without
a failed request.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from suggestion_server.storage.database import Store
    from suggestion_server.storage.tokens import TokenInfo

HELP = "create, list, show, rotate and revoke API tokens"
T = TypeVar("T")


def _token_id(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a token id (a positive integer), got {text!r}")
    return int(text)


def _experiment_id(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(
            f"expected an experiment id (a positive integer), got {text!r}"
        )
    return int(text)


def _grace(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(
            f"--grace: expected whole seconds >= 0 (e.g. 3600), got {text!r}"
        )
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``create [--name] [--experiment]``, ``list``, ``show ID``, ``revoke ID``; all ``--db``."""
    sub = parser.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = sub.add_parser(
        "create",
        help="create an operator token for a new client (or, with --experiment, a token scoped "
        "to one experiment) and print it",
    )
    create.add_argument("--name", default="cli", help="a name for the token (and a new client)")
    create.add_argument(
        "--experiment",
        type=_experiment_id,
        default=None,
        metavar="ID",
        help="scope the token to this experiment: it may only read it and create and update its "
        "suggestions, observations and training runs",
    )
    sub.add_parser(
        "list",
        help="every token: id, scope, client, name, created, rotated, previous value accepted "
        "until (never the token)",
    )
    show = sub.add_parser("show", help="one token by its id (from `optfleet token list`)")
    show.add_argument("token_id", type=_token_id, metavar="ID")
    rotate = sub.add_parser(
        "rotate",
        help="give a token a new value and print it; the previous value is accepted --grace "
        "seconds more",
    )
    rotate.add_argument("token_id", type=_token_id, metavar="ID")
    rotate.add_argument(
        "--grace",
        type=_grace,
        default=None,
        metavar="SECONDS",
        help="how long the previous value is still accepted (default: 3600; 0 refuses it at "
        "once, apart from up to a minute in each server process's cache)",
    )
    revoke = sub.add_parser("revoke", help="delete a token: it stops working (within a minute)")
    revoke.add_argument("token_id", type=_token_id, metavar="ID")
    for action in (create, sub.choices["list"], show, rotate, revoke):
        action.add_argument(
            "--db", default=None, help="database URL (default: ~/.optfleet/optfleet.db)"
        )


def _with_store(args: argparse.Namespace, work: Callable[[Store], T]) -> T:
    """Run ``work`` on the database (migrated first)."""
    from suggestion_server.config import default_db_url
    from suggestion_server.storage.database import Store, make_engine
    from suggestion_server.storage.migrate import upgrade_to_head

    store = Store(make_engine(args.db or default_db_url()))
    try:
        upgrade_to_head(store.engine)
        return work(store)
    finally:
        store.dispose()


HEADER = "id\tscope\tclient\tname\tcreated (UTC)\trotated (UTC)\tprevious accepted until (UTC)"


def _utc(seconds: int | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return "-" if seconds is None else time.strftime(fmt, time.gmtime(seconds))


def _line(info: TokenInfo) -> str:
    # Seconds on the deadline: a grace is often minutes.
    until = _utc(info.previous_until, "%Y-%m-%d %H:%M:%S")
    return (
        f"{info.id}\t{info.scope}\tclient {info.client_id}\t{info.name}\t{_utc(info.created)}"
        f"\t{_utc(info.rotated)}\t{until}"
    )


def _rotate(args: argparse.Namespace) -> int:
    from suggestion_server.storage import tokens

    grace = tokens.DEFAULT_GRACE_S if args.grace is None else args.grace
    rotated = _with_store(args, lambda store: tokens.rotate_token(store, args.token_id, grace))
    if rotated is None:
        sys.stderr.write(f"optfleet token rotate: no token with id {args.token_id}\n")
        return 2
    token, info = rotated
    sys.stdout.write(token + "\n")
    # The new value alone on stdout (for scripts); what happened on stderr.
    sys.stderr.write(f"rotated {_line(info)}\n")
    return 0


def run(args: argparse.Namespace) -> int:
    """Carry out the action; errors name the argument and exit 2."""
    from suggestion_server.storage import tokens

    action = args.token_command
    if action == "create":
        try:
            token = _with_store(
                args, lambda store: tokens.create_token(store, args.name, args.experiment)
            )
        except tokens.UnknownExperiment:
            sys.stderr.write(
                f"optfleet token create: --experiment {args.experiment}: no such "
                "experiment in this database\n"
            )
            return 2
        sys.stdout.write(token + "\n")
        return 0
    if action == "list":
        sys.stdout.write(HEADER + "\n")
        for info in _with_store(args, tokens.list_tokens):
            sys.stdout.write(_line(info) + "\n")
        return 0
    if action == "rotate":
        return _rotate(args)
    find = tokens.token_info if action == "show" else tokens.revoke_token
    found = _with_store(args, lambda store: find(store, args.token_id))
    if found is None:
        sys.stderr.write(f"optfleet token {action}: no token with id {args.token_id}\n")
        return 2
    prefix = "revoked " if action == "revoke" else ""
    sys.stdout.write(prefix + _line(found) + "\n")
    return 0
