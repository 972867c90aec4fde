"""SigOpt's stopping criteria, honoured when the experiment asks its fleet to.

An experiment whose metadata holds ``optfleet_stop_on_criteria`` = ``"true"`` (or ``1``; metadata
values cannot be booleans) drains its fleet once ``GET /experiments/{id}/stopping_criteria``
answers ``should_stop``: possible stagnation, or more observations than the budget. The agent
asks before it creates a suggestion, at most once per observation count it sees (one call per
observation). A server without the route (404: a SigOpt server that lacks it) turns the check
off for the run; a failed call skips that look. Either way the agent works on as if the setting
were absent, so it keeps working against any SigOpt server.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from worker_bootstrap.api_client import AmbiguousRequest, ApiError, ApiUnavailable
from worker_bootstrap.experiment_status import ExperimentStatus
from worker_bootstrap.logs import EventLog

Json = Dict[str, Any]
STOP_ON_CRITERIA_KEY = "optfleet_stop_on_criteria"
# One retry: the loop must not hang on an advisory check.
_ATTEMPTS = 2


def asks_to_stop_on_criteria(experiment: Json) -> bool:
    """Whether the experiment's metadata asks the fleet to stop when the criteria say so."""
    value = (experiment.get("metadata") or {}).get(STOP_ON_CRITERIA_KEY)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return value == 1 and not isinstance(value, bool)


class CriteriaWatch:
    """Asks the server's stopping criteria when the experiment wants them honoured."""

    def __init__(self) -> None:
        self.reasons: List[str] = []
        self._checked_count: Optional[int] = None
        self._unsupported = False

    def says_stop(self, status: ExperimentStatus, experiment: Json, log: EventLog) -> bool:
        """Whether the fleet should stop now; ``reasons`` then holds the server's reasons."""
        if self._unsupported or not asks_to_stop_on_criteria(experiment):
            return False
        count = (experiment.get("progress") or {}).get("observation_count")
        if not isinstance(count, int) or count == self._checked_count:
            return False
        self._checked_count = count
        path = f"/experiments/{status.experiment_id}/stopping_criteria"
        try:
            answer = status.api.request("GET", path, attempts=_ATTEMPTS)
        except ApiError as exc:
            if exc.status == 404:
                self._unsupported = True
                log.event("stopping_criteria_unavailable", status=404)
            else:
                log.event("warning", message=f"stopping criteria not read: {exc}")
            return False
        except (ApiUnavailable, AmbiguousRequest) as exc:
            log.event("warning", message=f"stopping criteria not read: {exc}")
            return False
        if answer.get("should_stop") is not True:
            return False
        self.reasons = [str(r) for r in answer.get("reasons") or []]
        log.event("stopping_criteria_met", reasons=self.reasons, observation_count=count)
        return True
