"""The agent's time: wall clock (leases, metadata), monotonic clock (intervals) and sleep."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Clocks:
    """Time as the agent reads and waits on it; tests pass simulated clocks."""

    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
