"""Whether the agent may start new work: not after a stop signal or a spot interruption notice."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class StopFlags:
    """A stop signal (SIGTERM, SIGINT: ``event``) and a spot interruption notice (``interrupted``).

    Both let the running evaluation stop gracefully and start nothing new; only the stop signal
    also skips the last look for orphans.
    """

    event: threading.Event = field(default_factory=threading.Event)
    interrupted: bool = False

    def stop_requested(self) -> bool:
        """A stop signal arrived."""
        return self.event.is_set()

    def halted(self) -> bool:
        """A stop signal or a spot interruption notice arrived."""
        return self.event.is_set() or self.interrupted
