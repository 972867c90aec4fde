"""What one agent run did: each part of the agent adds its counts; ``run`` returns the total."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List


@dataclass
class RunSummary:
    """What one agent run did."""

    evaluations: int = 0
    failures: int = 0
    resumed: int = 0
    adopted: int = 0
    reported_from_journal: int = 0
    dropped: int = 0
    stopped_early: int = 0  # evaluations whose training run the server stopped
    interrupted: bool = False
    stop_reason: str = ""
    drained: str = ""
    suggestion_ids: List[str] = field(default_factory=list)

    def counts(self) -> Dict[str, Any]:
        """The counters logged with ``agent_finished``."""
        return {
            "evaluations": self.evaluations,
            "failures": self.failures,
            "resumed": self.resumed,
            "adopted": self.adopted,
            "reported_from_journal": self.reported_from_journal,
            "dropped": self.dropped,
            "stopped_early": self.stopped_early,
        }
