"""``python -m suggestion_server --db URL --host 127.0.0.1 --port 8080 [--workers N]``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from suggestion_server.config import default_db_url


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of the server."""
    parser = argparse.ArgumentParser(prog="python -m suggestion_server", description=__doc__)
    add_server_arguments(parser)
    return parser


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """``--db``, ``--host``, ``--port``, ``--log-level``, ``--access-log``, ``--workers``,
    ``--seed``, ``--db-pool-size``, ``--tls-cert``, ``--tls-key`` (shared with the CLI)."""
    parser.add_argument(
        "--db", default=None, help="database URL (default: ~/.optfleet/optfleet.db)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="listen port (default 8080)")
    parser.add_argument("--log-level", default="info", help="debug, info, warning, error")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="server processes sharing the port (default 1); per-experiment guarantees live in "
        "the database, so several are safe",
    )
    parser.add_argument(
        "--seed",
        type=_non_negative_int,
        default=None,
        help="fix the suggestion engine's randomness so a run can be replayed (default: fresh "
        "randomness); each process and each experiment derive their own seed from it",
    )
    parser.add_argument(
        "--db-pool-size",
        type=_positive_int,
        default=32,
        help="database connections each process keeps (default 32, up to 1.5x at peaks); on "
        "PostgreSQL keep max_connections above processes x 1.5 x this",
    )
    parser.add_argument(
        "--tls-cert",
        type=_readable_file,
        default=None,
        metavar="FILE",
        help="serve HTTPS with this PEM certificate (chain); needs --tls-key",
    )
    parser.add_argument(
        "--tls-key",
        type=_readable_file,
        default=None,
        metavar="FILE",
        help="the PEM private key of --tls-cert",
    )


def _readable_file(text: str) -> str:
    if not os.path.isfile(text) or not os.access(text, os.R_OK):
        raise argparse.ArgumentTypeError(f"expected a readable PEM file, got {text!r}")
    return text


def tls_options(cert: str | None, key: str | None) -> dict[str, str]:
    """uvicorn's ssl options for ``--tls-cert``/``--tls-key`` (none for plain HTTP); raises
    ``ValueError`` naming the missing flag when only one is given."""
    if (cert is None) != (key is None):
        missing = "--tls-key" if key is None else "--tls-cert"
        raise ValueError(f"{missing} is missing: --tls-cert and --tls-key go together")
    return {} if cert is None or key is None else {"ssl_certfile": cert, "ssl_keyfile": key}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 2**32-1, got {text!r}")
    return value


def sqlite_workers_warning(db_url: str, workers: int) -> str | None:
    """Why ``--workers N`` on a SQLite file is a poor choice, or None when it is not that."""
    if workers > 1 and db_url.startswith("sqlite"):
        return (
            f"--workers {workers} on SQLite: the processes contend for its one writer and are "
            "slower together than one process (docs/api.md); use PostgreSQL for several processes"
        )
    return None


def serve(args: argparse.Namespace) -> int:
    """Run the server until interrupted."""
    import uvicorn

    from suggestion_server.app import (
        DB_POOL_SIZE_ENV,
        DB_URL_ENV,
        LOG_LEVEL_ENV,
        SEED_ENV,
        create_app,
        prepare_database,
    )
    from suggestion_server.http.protocol import PROTOCOL

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    db_url = args.db or default_db_url()
    bootstrap_token = os.environ.get("OPTFLEET_BOOTSTRAP_TOKEN") or None
    try:
        tls = tls_options(getattr(args, "tls_cert", None), getattr(args, "tls_key", None))
    except ValueError as exc:
        sys.stderr.write(f"suggestion server: {exc}\n")
        return 2
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level.lower(),
        "access_log": args.access_log,
        "timeout_keep_alive": 75,
        "http": PROTOCOL,
        **tls,
    }
    workers = getattr(args, "workers", 1)
    pool_size = getattr(args, "db_pool_size", 32)
    seed = getattr(args, "seed", None)
    warning = sqlite_workers_warning(db_url, workers)
    if warning:
        logging.getLogger("suggestion_server").warning(warning)
    if workers == 1:
        app = create_app(
            db_url,
            bootstrap_token=bootstrap_token,
            db_pool_size=pool_size,
            engine_process=True,
            seed=seed,
        )
        uvicorn.run(app, **options)
        return 0
    # Several processes: migrate once here, then uvicorn spawns workers that each build the app
    # from the environment (an import string is the only way to hand an app to workers).
    prepare_database(db_url, bootstrap_token)
    os.environ[DB_URL_ENV] = db_url
    os.environ[LOG_LEVEL_ENV] = args.log_level.upper()
    os.environ[DB_POOL_SIZE_ENV] = str(pool_size)
    if seed is not None:
        os.environ[SEED_ENV] = str(seed)
    uvicorn.run(
        "suggestion_server.app:app_from_environment", factory=True, workers=workers, **options
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    return serve(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
