"""What every service function needs: the store, where the engine runs, the suggestion pool and
the clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from suggestion_server.optimizer.api import Suggester
from suggestion_server.pool.optimizer_runs import OptimizerRunner
from suggestion_server.pool.suggestion_pool import OptimizerRuns, SuggestionPool
from suggestion_server.storage.database import Store


@dataclass
class ServerContext:
    """Shared, process-wide state of one app instance."""

    store: Store
    # Where engine runs compute: ``optimizer_process.OptimizerProcess``, or in this process an
    # ``OptimizerRunner`` over a suggester.
    optimizer_runs: OptimizerRuns
    clock: Callable[[], float] = field(default=time.time)
    pool: SuggestionPool = field(init=False)

    @classmethod
    def in_process(cls, store: Store, suggester: Suggester) -> ServerContext:
        """A context whose engine runs compute in this process."""
        return cls(store=store, optimizer_runs=OptimizerRunner(store, suggester))

    def __post_init__(self) -> None:
        # The clock is read through the context, so tests that replace it reach the pool too.
        self.pool = SuggestionPool(self.store, self.optimizer_runs, lambda: self.clock())

    def now(self) -> int:
        """Current time as integer Unix seconds (the wire's timestamps)."""
        return int(self.clock())
