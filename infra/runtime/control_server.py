"""Start the suggestion server with the database URL from the environment (the systemd unit).

    python -m infra.runtime.control_server --host 0.0.0.0 --port 8080

The unit reads /etc/optfleet/server.env (mode 0600): OPTFLEET_DB_URL and OPTFLEET_BOOTSTRAP_TOKEN.
Passing the URL as `--db` inside this process keeps the database password off the process's
command line (`ps` shows every local user argv, not the environment).
"""

from __future__ import annotations

import os
import sys
from typing import Optional, Sequence


def server_argv(argv: Sequence[str], db_url: str) -> list[str]:
    """The suggestion server's arguments: ``--db`` from the environment, the rest as given."""
    return ["--db", db_url, *argv]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``suggestion_server`` with ``--db $OPTFLEET_DB_URL``."""
    db_url = os.environ.get("OPTFLEET_DB_URL", "").strip()
    if not db_url:
        print("control_server: OPTFLEET_DB_URL is not set", file=sys.stderr)
        return 2
    from suggestion_server.__main__ import main as serve

    return serve(server_argv(list(sys.argv[1:] if argv is None else argv), db_url))


if __name__ == "__main__":
    sys.exit(main())
