"""Free loopback ports and waiting for a service to answer, with a bound."""

from __future__ import annotations

import time
from typing import Callable

from optfleet.local_server import free_loopback_port

# A TCP port on 127.0.0.1 that was free a moment ago.
free_port = free_loopback_port


def wait_until(
    ready: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.05
) -> None:
    """Poll ``ready`` until True; after ``timeout_s`` raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s")
