"""`optfleet token create [--db URL] [--name NAME]`: print a new API token."""

from __future__ import annotations

import argparse
import sys

HELP = "create API tokens"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``create`` with ``--db`` and ``--name``."""
    sub = parser.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="create a token for a new client and print it")
    create.add_argument(
        "--db", default=None, help="database URL (default: ~/.optfleet/optfleet.db)"
    )
    create.add_argument("--name", default="cli", help="a name for the token and its client")


def run(args: argparse.Namespace) -> int:
    """Create the token (migrating the database first) and print it on stdout."""
    from suggestion_server.config import default_db_url
    from suggestion_server.storage.database import Store, make_engine
    from suggestion_server.storage.migrate import upgrade_to_head
    from suggestion_server.storage.tokens import create_token

    store = Store(make_engine(args.db or default_db_url()))
    try:
        upgrade_to_head(store.engine)
        token = create_token(store, args.name)
    finally:
        store.dispose()
    sys.stdout.write(token + "\n")
    return 0
