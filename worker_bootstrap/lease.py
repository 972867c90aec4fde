"""This instance's hold on a suggestion: the lease it writes, renews while evaluating, and gives up
with ``interrupted_at`` on a spot notice (docs/agent.md, "Orphan hand-off").

Every write is a read-modify-write of the whole metadata map (a PUT replaces it), carrying the
attempt's spend so far (cost/attempt_spend.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from worker_bootstrap.api_client import ApiClient, ApiError, ApiUnavailable
from worker_bootstrap.cost.attempt_spend import SpendTracker
from worker_bootstrap.journal import Entry, Journal
from worker_bootstrap.logs import EventLog


@dataclass(eq=False)
class LeaseKeeper:
    """Writes this instance's lease on its suggestions."""

    api: ApiClient
    experiment_id: str
    instance_id: str
    ttl_s: float
    journal: Journal
    spend: SpendTracker
    log: EventLog
    clock: Callable[[], float]

    def expiry_from_now(self) -> float:
        """``lease_expires_at`` for a lease taken now (unix seconds)."""
        return round(self.clock() + self.ttl_s, 3)

    def renew(self, entry: Entry) -> bool:
        """Extend the lease; False when the suggestion is no longer ours to evaluate."""
        sid = entry.suggestion_id
        try:
            current = self.api.suggestion(self.experiment_id, sid)
        except ApiError as exc:
            return exc.status != 404
        except ApiUnavailable:
            return True  # keep evaluating; the pre-post check decides later
        metadata = dict(current.get("metadata") or {})
        if current.get("state") != "open" or metadata.get("instance_id") != self.instance_id:
            return False
        if entry.claim_nonce and metadata.get("claim_nonce") != entry.claim_nonce:
            return False
        metadata["lease_expires_at"] = self.expiry_from_now()
        self.spend.stamp(sid, metadata)
        try:
            self.api.update_suggestion_metadata(self.experiment_id, sid, metadata)
        except (ApiError, ApiUnavailable) as exc:
            self.log.event("lease_renewal_failed", sid, error=str(exc))
            return True
        entry.lease_expires_at = float(metadata["lease_expires_at"])
        self.journal.save(entry)
        return True

    def record_interrupted(self, sid: str) -> None:
        """Stamp ``interrupted_at`` so another instance adopts the suggestion at once."""
        try:
            current = self.api.suggestion(self.experiment_id, sid)
            metadata = dict(current.get("metadata") or {})
            metadata["interrupted_at"] = int(self.clock())
            self.spend.stamp(sid, metadata)
            self.api.update_suggestion_metadata(self.experiment_id, sid, metadata)
            self.log.event("interruption_recorded", sid)
        except (ApiError, ApiUnavailable) as exc:
            self.log.event("interruption_record_failed", sid, error=str(exc))
