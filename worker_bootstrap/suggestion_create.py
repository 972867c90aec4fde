"""Creating this instance's next suggestion, stamped with its identity and a lease.

An ambiguous create (the request may have landed) is settled by listing the open suggestions:
an unjournaled one of this instance is the one created, so none is left open behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from worker_bootstrap.adoption import oldest_first, owner_of
from worker_bootstrap.api_client import AmbiguousRequest, ApiClient, ApiError, ApiUnavailable
from worker_bootstrap.config import Settings
from worker_bootstrap.create_marker import CreateMarker
from worker_bootstrap.experiment_status import ExperimentStatus
from worker_bootstrap.instance import Instance
from worker_bootstrap.journal import Journal
from worker_bootstrap.lease import LeaseKeeper
from worker_bootstrap.logs import EventLog
from worker_bootstrap.steps import AFTER_SUGGESTION_CREATE, StepHooks

Json = Dict[str, Any]


@dataclass(eq=False)
class SuggestionCreator:
    """Asks the server for a new suggestion for this instance."""

    api: ApiClient
    settings: Settings
    instance: Instance
    journal: Journal
    lease: LeaseKeeper
    experiment: ExperimentStatus
    log: EventLog
    hooks: StepHooks
    on_ambiguous: Callable[[], None]  # after an ambiguous create: the next scan should be full
    marker: CreateMarker

    def create(self) -> Optional[Json]:
        """The new suggestion; None when the experiment turned out to be deleted."""
        with self.marker.creating():
            return self._create_once()

    def _create_once(self) -> Optional[Json]:
        metadata = self.instance.metadata()
        metadata["lease_expires_at"] = self.lease.expiry_from_now()
        for attempt in range(self.settings.http_attempts):
            try:
                suggestion = self.api.create_suggestion(self.settings.experiment_id, metadata)
            except AmbiguousRequest as exc:
                # It may exist: the next scan finds it by instance_id instead of creating another.
                self.log.event("suggestion_create_ambiguous", error=exc.cause)
                self.on_ambiguous()
                self.api.backoff.wait(attempt)
                created = self._unjournaled_own()
                if created is not None:
                    return created
                continue
            except ApiError as exc:
                if exc.status in (400, 404) and self.experiment.deleted_now():
                    return None
                raise
            self.hooks.reached(AFTER_SUGGESTION_CREATE)
            self.log.event("suggestion_created", str(suggestion.get("id")))
            return suggestion
        raise ApiUnavailable(
            f"creating a suggestion failed {self.settings.http_attempts} times in a row"
        )

    def _unjournaled_own(self) -> Optional[Json]:
        """The oldest open suggestion of this instance the journal does not know, if any."""
        me, eid = self.instance.instance_id, self.settings.experiment_id
        mine = [
            s
            for s in self.api.open_suggestions(eid, self.settings.page_limit)
            if owner_of(s) == me and self.journal.load(eid, str(s.get("id"))) is None
        ]
        return sorted(mine, key=oldest_first)[0] if mine else None
