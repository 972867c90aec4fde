"""Taking a suggestion over through claim-and-verify (adoption.py) and journaling the claim."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from worker_bootstrap.adoption import Claimer, Detector, lease_expiry, owner_of
from worker_bootstrap.api_client import AmbiguousRequest, ApiError, ApiUnavailable
from worker_bootstrap.journal import Journal
from worker_bootstrap.logs import EventLog
from worker_bootstrap.steps import AFTER_CLAIM, StepHooks

Json = Dict[str, Any]


class OwnOnly:
    """Detector for re-claiming our own suggestion: nothing else is considered orphaned."""

    mode = "own"

    def __init__(self, me: str) -> None:
        self.me = me

    def orphaned(self, suggestion: Json, view: Any) -> bool:
        return owner_of(suggestion) == self.me


@dataclass(eq=False)
class Claims:
    """Claims suggestions for this instance; a claim that held is journaled with its nonce."""

    claimer: Claimer
    experiment_id: str
    lease_ttl_s: float
    journal: Journal
    log: EventLog
    hooks: StepHooks

    def claim(
        self, sid: str, detector: Optional[Detector] = None, view: Any = None
    ) -> Optional[Json]:
        """The suggestion, fresh, when the claim held; None when lost or failed. Without
        ``detector``: take back one of this instance's own suggestions."""
        detector = detector or OwnOnly(self.claimer.me)
        try:
            claimed = self.claimer.claim(
                sid, detector, view, on_written=lambda: self.hooks.reached(AFTER_CLAIM)
            )
        except (ApiError, ApiUnavailable, AmbiguousRequest) as exc:
            self.log.event("claim_failed", sid, error=str(exc))
            return None
        if claimed is not None:
            metadata = claimed.get("metadata") or {}
            nonce = metadata.get("claim_nonce")
            entry = self.journal.entry_for(self.experiment_id, claimed)
            entry.claim_nonce = str(nonce) if nonce else None
            entry.adopted = metadata.get("adopted_by") == self.claimer.me
            entry.lease_expires_at = lease_expiry(claimed, self.lease_ttl_s)
            self.journal.save(entry)
        return claimed
