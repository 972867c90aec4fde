"""`optfleet server`: run the SigOpt-compatible suggestion server (uvicorn, 1+ processes)."""

from __future__ import annotations

import argparse

HELP = "run the SigOpt-compatible suggestion server"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--db``, ``--host``, ``--port``, ``--log-level``, ``--access-log``, ``--workers``."""
    from suggestion_server.__main__ import add_server_arguments

    add_server_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; ``OPTFLEET_BOOTSTRAP_TOKEN`` is registered at start."""
    from suggestion_server.__main__ import serve

    return serve(args)
