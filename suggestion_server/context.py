"""What every service function needs: the store, where the engine runs, the suggestion pool and
the clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from suggestion_server.db import Store
from suggestion_server.engine_runs import EngineRunner
from suggestion_server.suggest.api import Suggester
from suggestion_server.suggestion_pool import EngineRuns, SuggestionPool


@dataclass
class ServerContext:
    """Shared, process-wide state of one app instance."""

    store: Store
    # Where engine runs compute: ``engine_process.EngineProcess``, or in this process an
    # ``EngineRunner`` over a suggester.
    engine_runs: EngineRuns
    clock: Callable[[], float] = field(default=time.time)
    pool: SuggestionPool = field(init=False)

    @classmethod
    def in_process(cls, store: Store, suggester: Suggester) -> ServerContext:
        """A context whose engine runs compute in this process."""
        return cls(store=store, engine_runs=EngineRunner(store, suggester))

    def __post_init__(self) -> None:
        # The clock is read through the context, so tests that replace it reach the pool too.
        self.pool = SuggestionPool(self.store, self.engine_runs, lambda: self.clock())

    def now(self) -> int:
        """Current time as integer Unix seconds (the wire's timestamps)."""
        return int(self.clock())
