"""`optfleet token create|list|show|revoke [--db URL]`: API tokens of the server's database.

``create`` prints a new token (only once: the database keeps its sha256); ``--experiment ID``
scopes it to that one experiment (what a fleet's instances should hold, docs/api.md).
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

HELP = "create, list, show and revoke API tokens"
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
    sub.add_parser("list", help="every token: id, scope, client, name, created (never the token)")
    show = sub.add_parser("show", help="one token by its id (from `optfleet token list`)")
    show.add_argument("token_id", type=_token_id, metavar="ID")
    revoke = sub.add_parser("revoke", help="delete a token: it stops working (within a minute)")
    revoke.add_argument("token_id", type=_token_id, metavar="ID")
    for action in (create, sub.choices["list"], show, revoke):
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


def _line(info: TokenInfo) -> str:
    created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(info.created))
    return f"{info.id}\t{info.scope}\tclient {info.client_id}\t{info.name}\t{created}"


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
        sys.stdout.write("id\tscope\tclient\tname\tcreated (UTC)\n")
        for info in _with_store(args, tokens.list_tokens):
            sys.stdout.write(_line(info) + "\n")
        return 0
    find = tokens.token_info if action == "show" else tokens.revoke_token
    found = _with_store(args, lambda store: find(store, args.token_id))
    if found is None:
        sys.stderr.write(f"optfleet token {action}: no token with id {args.token_id}\n")
        return 2
    prefix = "revoked " if action == "revoke" else ""
    sys.stdout.write(prefix + _line(found) + "\n")
    return 0
