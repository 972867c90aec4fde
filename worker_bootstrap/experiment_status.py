"""The experiment as the agent last read it: its progress, and whether it was deleted."""

from __future__ import annotations

from typing import Any, Dict, Optional

from worker_bootstrap.api_client import ApiClient, ApiError

Json = Dict[str, Any]


def budget_reached(experiment: Json) -> bool:
    """Whether the budget is spent: a Core experiment's ``observation_count`` reached its
    ``observation_budget``; an AI experiment has no ``remaining_budget`` left (a run takes its
    share when it is created, so no new run is due while the open ones finish)."""
    progress = experiment.get("progress") or {}
    remaining = _number(progress.get("remaining_budget"))
    if remaining is not None:
        return remaining <= 0
    budget = _number(experiment.get("observation_budget"))
    count = _number(progress.get("observation_count"))
    return budget is not None and count is not None and count >= budget


def open_count(experiment: Json) -> Optional[int]:
    """How many suggestions are open, if the server says: ``progress.open_suggestion_count``
    (our server's extension) or an AI experiment's ``active_run_count``."""
    progress = experiment.get("progress") or {}
    for key in ("open_suggestion_count", "active_run_count"):
        count = progress.get(key)
        if isinstance(count, int) and not isinstance(count, bool):
            return count
    return None


class ExperimentStatus:
    """Reads the experiment; remembers a deletion, and whether progress changed since a read."""

    def __init__(self, api: ApiClient, experiment_id: str) -> None:
        self.api = api
        self.experiment_id = experiment_id
        self.deleted = False
        self._progress_stale = False

    def fetch(self, at_start: bool = False) -> Json:
        """The experiment; ``{"state": "deleted"}`` once it is gone. At start a 404 is an error
        naming the experiment instead (nothing was done for it yet)."""
        try:
            return self.api.experiment(self.experiment_id)
        except ApiError as exc:
            if exc.status == 404 and not at_start:
                self.deleted = True
                return {"state": "deleted"}
            if exc.status == 404:
                raise ApiError(
                    exc.method,
                    exc.path,
                    404,
                    f"experiment {self.experiment_id} not found (or not visible to this token)",
                ) from None
            raise

    def deleted_now(self) -> bool:
        """Whether a write was refused because the experiment is gone (a fresh read)."""
        if self.fetch().get("state") != "deleted":
            return False
        self.deleted = True
        return True

    def progress_changed(self) -> None:
        """An observation was reported: the next :meth:`latest` reads the progress again."""
        self._progress_stale = True

    def latest(self, experiment: Json) -> Json:
        """``experiment``, or a fresh read after an observation was reported (one progress check
        per observation: the third API call per evaluation)."""
        if not self._progress_stale:
            return experiment
        self._progress_stale = False
        return self.fetch()


def _number(value: Any) -> Optional[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None
