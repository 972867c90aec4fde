"""Adopting orphans: open suggestions whose owner is gone (docs/agent.md, "Orphan hand-off").

The elected adopter (rendezvous hashing over the live set) claims first; anyone steps in once an
orphan has waited a further lease TTL. Claim-and-verify (claims.py) settles any race.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from worker_bootstrap.adoption import (
    Detector,
    Ec2Detector,
    LeaseDetector,
    OrphanView,
    is_interrupted,
    lease_expiry,
    oldest_first,
    owner_of,
    rendezvous_winner,
)
from worker_bootstrap.claims import Claims
from worker_bootstrap.config import Settings
from worker_bootstrap.logs import EventLog
from worker_bootstrap.run_summary import RunSummary
from worker_bootstrap.stop_flags import StopFlags

Json = Dict[str, Any]
# Evaluate and report a suggestion this instance now holds (``resumed`` False for adoptions).
Work = Callable[[Json, bool], None]


@dataclass(eq=False)
class OrphanAdopter:
    """Finds the orphans among listed suggestions and claims those it may take."""

    settings: Settings
    instance_id: str
    region: Optional[str]
    claims: Claims
    stop: StopFlags
    summary: RunSummary
    log: EventLog
    clock: Callable[[], float]
    work: Work
    # The detector and verdicts of the last full scan: a lapsed-only list cannot tell who is
    # alive, so scans in between reuse them.
    last_view: Optional[Tuple[Detector, OrphanView]] = field(default=None, init=False)
    _detector: Optional[Detector] = field(default=None, init=False)

    def adopt(
        self, suggestions: List[Json], known: Optional[Tuple[Detector, OrphanView]] = None
    ) -> None:
        """Claim, evaluate and report the orphans among ``suggestions``; ``known``: the view of
        the last full scan (for a lapsed-only list)."""
        if known is not None:
            detector, view = known
        else:
            detector, view = self._fresh_view(suggestions)
            self.last_view = (detector, view)
        now = self.clock()
        ttl = self.settings.lease_ttl_s
        candidates = sorted(
            (
                s
                for s in suggestions
                if owner_of(s) not in (None, self.instance_id) and detector.orphaned(s, view)
            ),
            key=oldest_first,
        )
        for suggestion in candidates:
            if self.stop.halted():
                return
            sid = str(suggestion["id"])
            since = _orphaned_since(suggestion, ttl)
            winner = rendezvous_winner(sid, view.live)
            # The elected adopter goes first; anyone may step in once it is overdue.
            if winner != self.instance_id and now < since + ttl:
                continue
            claimed = self.claims.claim(sid, detector=detector, view=view)
            if claimed is None:
                self.log.event("claim_lost", sid, previous_owner=owner_of(suggestion))
                continue
            self.summary.adopted += 1
            self.log.event(
                "suggestion_adopted",
                sid,
                previous_owner=owner_of(suggestion),
                interrupted=is_interrupted(suggestion),
            )
            self.work(claimed, False)

    def _fresh_view(self, suggestions: List[Json]) -> Tuple[Detector, OrphanView]:
        me, eid = self.instance_id, self.settings.experiment_id
        detector = self._configured_detector()
        try:
            return detector, detector.view(me, eid, suggestions)
        except Exception as exc:
            # EC2 unreachable or not permitted: leases still tell who is alive, so use them.
            self.log.event("orphan_scan_fallback", error=f"{type(exc).__name__}: {exc}")
            fallback = LeaseDetector(self.settings.lease_ttl_s, clock=self.clock)
            return fallback, fallback.view(me, eid, suggestions)

    def _configured_detector(self) -> Detector:
        if self._detector is None:
            mode = self.settings.orphan_detection
            if mode == "auto":
                from worker_bootstrap import aws

                mode = "ec2" if aws.credentials_available(self.region) else "lease"
            if mode == "ec2":
                self._detector = Ec2Detector(self.region)
            else:
                self._detector = LeaseDetector(self.settings.lease_ttl_s, clock=self.clock)
            self.log.event("orphan_detection", mode=mode)
        return self._detector


def _orphaned_since(suggestion: Json, lease_ttl_s: float) -> float:
    metadata = suggestion.get("metadata") or {}
    try:
        return float(metadata["interrupted_at"])
    except (KeyError, TypeError, ValueError):
        return lease_expiry(suggestion, lease_ttl_s)
