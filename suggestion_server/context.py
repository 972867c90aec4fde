"""What every service function needs: the store, the suggestion engine and the clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from suggestion_server.db import Store
from suggestion_server.suggest.api import Suggester


@dataclass
class ServerContext:
    """Shared, process-wide state of one app instance."""

    store: Store
    suggester: Suggester
    clock: Callable[[], float] = field(default=time.time)

    def now(self) -> int:
        """Current time as integer Unix seconds (the wire's timestamps)."""
        return int(self.clock())
