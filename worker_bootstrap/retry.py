"""Bounded exponential backoff with full jitter, with injectable sleep and randomness."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Backoff:
    """Delay before retry ``n`` (0-based) is ``U(0, min(cap_s, base_s * 2**n))``."""

    attempts: int = 6
    base_s: float = 0.2
    cap_s: float = 5.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, retry_index: int) -> float:
        """The jittered delay before the retry numbered ``retry_index``."""
        ceiling = min(self.cap_s, self.base_s * (2**retry_index))
        return self.rng.uniform(0.0, ceiling)

    def wait(self, retry_index: int) -> None:
        """Sleep for :meth:`delay` (the only place the agent sleeps between retries)."""
        self.sleep(self.delay(retry_index))
