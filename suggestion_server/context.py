"""What every service function needs: the store, the suggestion engine, the suggestion pool and
the clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from suggestion_server.db import Store
from suggestion_server.suggest.api import Suggester
from suggestion_server.suggestion_pool import SuggestionPool


@dataclass
class ServerContext:
    """Shared, process-wide state of one app instance."""

    store: Store
    suggester: Suggester
    clock: Callable[[], float] = field(default=time.time)
    pool: SuggestionPool = field(init=False)

    def __post_init__(self) -> None:
        # The clock is read through the context, so tests that replace it reach the pool too.
        self.pool = SuggestionPool(self.store, self.suggester, lambda: self.clock())

    def now(self) -> int:
        """Current time as integer Unix seconds (the wire's timestamps)."""
        return int(self.clock())
