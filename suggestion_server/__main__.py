"""``python -m suggestion_server --db URL --host 127.0.0.1 --port 8080``: one uvicorn process."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from suggestion_server.config import default_db_url


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of the server."""
    parser = argparse.ArgumentParser(prog="python -m suggestion_server", description=__doc__)
    add_server_arguments(parser)
    return parser


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """``--db``, ``--host``, ``--port``, ``--log-level``, ``--access-log`` (shared with the CLI)."""
    parser.add_argument(
        "--db", default=None, help="database URL (default: ~/.optfleet/optfleet.db)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="listen port (default 8080)")
    parser.add_argument("--log-level", default="info", help="debug, info, warning, error")
    parser.add_argument("--access-log", action="store_true", help="log every request")


def serve(args: argparse.Namespace) -> int:
    """Run the server until interrupted."""
    import uvicorn

    from suggestion_server.app import create_app

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    app = create_app(
        args.db or default_db_url(),
        bootstrap_token=os.environ.get("OPTFLEET_BOOTSTRAP_TOKEN") or None,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level.lower(),
        access_log=args.access_log,
        timeout_keep_alive=75,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    return serve(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
