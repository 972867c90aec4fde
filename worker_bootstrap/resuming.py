"""Taking back one of this instance's own open suggestions after a restart (docs/agent.md,
"Resume at start"): a fresh lease is renewed, a lapsed, interrupted or unknown claim re-claimed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from worker_bootstrap.adoption import is_interrupted, lease_expiry
from worker_bootstrap.api_client import ApiClient
from worker_bootstrap.claims import Claims
from worker_bootstrap.config import Settings
from worker_bootstrap.journal import Journal
from worker_bootstrap.lease import LeaseKeeper
from worker_bootstrap.logs import EventLog
from worker_bootstrap.run_summary import RunSummary

Json = Dict[str, Any]


@dataclass
class TakenBack:
    """A suggestion this instance holds again; ``started_before``: its evaluation had started
    (a resume), else it was created but never started (a first start)."""

    suggestion: Json
    started_before: bool


@dataclass(eq=False)
class Resumer:
    """Re-establishes this instance's hold on its own open suggestions."""

    api: ApiClient
    settings: Settings
    journal: Journal
    claims: Claims
    lease: LeaseKeeper
    summary: RunSummary
    log: EventLog
    clock: Callable[[], float]

    def take_back(self, suggestion: Json) -> Optional[TakenBack]:
        """The suggestion held again, or None when someone else took it meanwhile."""
        eid = self.settings.experiment_id
        sid = str(suggestion["id"])
        entry = self.journal.load(eid, sid)
        # Created but never started (a crash right after create): a first start, not a resume.
        started_before = entry is not None and entry.attempts > 0
        metadata = dict(suggestion.get("metadata") or {})
        nonce = metadata.get("claim_nonce")
        own_claim = nonce is None or (entry is not None and entry.claim_nonce == nonce)
        margin = self.settings.settle_s + 1.0
        lease_fresh = lease_expiry(suggestion, self.settings.lease_ttl_s) - self.clock() > margin
        if is_interrupted(suggestion) or not lease_fresh or not own_claim:
            # Someone may be adopting it right now: take it back through the claim protocol.
            claimed = self.claims.claim(sid)
            if claimed is None:
                self.log.event("resume_lost", sid)
                self.journal.forget(eid, sid)
                return None
            suggestion = claimed
        else:
            metadata["lease_expires_at"] = self.lease.expiry_from_now()
            updated = self.api.update_suggestion_metadata(eid, sid, metadata)
            suggestion = updated if updated.get("id") else {**suggestion, "metadata": metadata}
        if started_before:
            self.summary.resumed += 1
            self.log.event("suggestion_resumed", sid)
        else:
            self.log.event("suggestion_picked_up", sid, reason="created before a restart")
        return TakenBack(suggestion, started_before)
