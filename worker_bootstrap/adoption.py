"""Orphan hand-off without compare-and-set: who is dead, who adopts, and the claim protocol.

The argument for exactly-once is written out in docs/agent.md ("Orphan hand-off"). In short:
(1) every agent elects the same adopter by rendezvous hashing over the live set it sees, so agents
that agree never race; (2) claim-and-verify settles races when views differ: write a claim with a
random nonce, wait longer than any request can take, re-read, and evaluate only if the nonce
survived; (3) re-read before posting the observation and drop the result if the suggestion is
closed or the claim was lost.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Set

from worker_bootstrap.api_client import ApiClient

Json = Dict[str, Any]

# What an owner stamped about itself; an adopter moves these into ``owner_history``.
OWNER_KEYS = (
    "instance_id",
    "instance_type",
    "availability_zone",
    "lifecycle",
    "hostname",
    "boot_id",
    "interrupted_at",
)
HISTORY_KEY = "owner_history"
HISTORY_MAX_CHARS = 500  # a metadata string value's limit


def with_previous_owner(history_text: Any, metadata: Json) -> str:
    """``owner_history`` (JSON list, oldest first) plus the owner described by ``metadata``.

    The oldest records are dropped when the text would exceed a metadata value's limit.
    """
    try:
        history = json.loads(str(history_text)) if history_text else []
    except ValueError:
        history = []
    if not isinstance(history, list):
        history = []
    history.append({key: metadata[key] for key in OWNER_KEYS if metadata.get(key) is not None})
    text = json.dumps(history, separators=(",", ":"))
    while len(text) > HISTORY_MAX_CHARS and len(history) > 1:
        history.pop(0)
        text = json.dumps(history, separators=(",", ":"))
    return text[:HISTORY_MAX_CHARS]


def lease_expiry(suggestion: Json, lease_ttl_s: float) -> float:
    """``lease_expires_at`` from the metadata, else ``created + ttl`` (for foreign suggestions)."""
    metadata = suggestion.get("metadata") or {}
    raw: Any = metadata.get("lease_expires_at")
    try:
        return float(raw)
    except (TypeError, ValueError):
        return float(suggestion.get("created") or 0) + lease_ttl_s


def oldest_first(item: Json) -> Any:
    """Sort key of suggestions or observations: creation time (whole seconds), then id, numeric
    ids in number order ("9" before "10")."""
    sid = str(item.get("id", ""))
    return (int(item.get("created") or 0), len(sid), sid)


def owner_of(suggestion: Json) -> Optional[str]:
    """The ``instance_id`` a suggestion belongs to, if any."""
    value = (suggestion.get("metadata") or {}).get("instance_id")
    return str(value) if value else None


def is_interrupted(suggestion: Json) -> bool:
    """True when its owner recorded a spot interruption and left it open for adoption."""
    return bool((suggestion.get("metadata") or {}).get("interrupted_at"))


def rendezvous_winner(suggestion_id: str, live: Iterable[str]) -> Optional[str]:
    """The instance with the highest hash of (suggestion id, instance id): same on every agent."""
    best: Optional[str] = None
    best_score = b""
    for instance in sorted(set(live)):
        score = hashlib.sha256(f"{suggestion_id}\0{instance}".encode()).digest()
        if best is None or score > best_score:
            best, best_score = instance, score
    return best


@dataclass
class OrphanView:
    """One scan's verdicts: dead owners and the live set used for the election."""

    dead_owners: Set[str]
    live: Set[str]


class LeaseDetector:
    """Without EC2: an owner is dead for a suggestion whose lease has lapsed."""

    mode = "lease"

    def __init__(self, lease_ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.lease_ttl_s = lease_ttl_s
        self.clock = clock

    def view(self, me: str, experiment_id: str, suggestions: List[Json]) -> OrphanView:
        now = self.clock()
        fresh: Set[str] = set()
        owners: Set[str] = set()
        for suggestion in suggestions:
            owner = owner_of(suggestion)
            if owner is None:
                continue
            owners.add(owner)
            if lease_expiry(suggestion, self.lease_ttl_s) > now and not is_interrupted(suggestion):
                fresh.add(owner)
        return OrphanView(dead_owners=owners - fresh - {me}, live=fresh | {me})

    def orphaned(self, suggestion: Json, view: OrphanView) -> bool:
        if is_interrupted(suggestion):
            return True
        return lease_expiry(suggestion, self.lease_ttl_s) <= self.clock()


class Ec2Detector:
    """With EC2: an owner is dead when DescribeInstances says terminated/shutting-down/absent."""

    mode = "ec2"

    def __init__(self, region: Optional[str]) -> None:
        self.region = region

    def view(self, me: str, experiment_id: str, suggestions: List[Json]) -> OrphanView:
        from worker_bootstrap import aws

        owners = {owner for owner in map(owner_of, suggestions) if owner and owner != me}
        states = aws.instance_states(owners, self.region)
        dead = {
            owner for owner in owners if states.get(owner, "absent") in (*aws.DEAD_STATES, "absent")
        }
        live = aws.live_instances_of(experiment_id, self.region) | {me}
        return OrphanView(dead_owners=dead, live=live - dead)

    def orphaned(self, suggestion: Json, view: OrphanView) -> bool:
        return is_interrupted(suggestion) or owner_of(suggestion) in view.dead_owners


Detector = Any  # LeaseDetector | Ec2Detector (structural; kept simple for Python 3.9)


class Claimer:
    """Claim-and-verify on a suggestion's metadata (the server's last write wins)."""

    def __init__(
        self,
        api: ApiClient,
        experiment_id: str,
        me: str,
        lease_ttl_s: float,
        settle_s: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = lambda: secrets.token_hex(8),
        identity: Callable[[], Json] = dict,
    ) -> None:
        self.api = api
        self.experiment_id = experiment_id
        self.me = me
        self.lease_ttl_s = lease_ttl_s
        self.settle_s = settle_s
        self.sleep = sleep
        self.clock = clock
        self.nonce = nonce
        self.identity = identity

    def claimable(self, suggestion: Json, detector: Detector, view: OrphanView) -> bool:
        """Open, and either orphaned, interrupted, or ours with a lapsed lease."""
        if suggestion.get("state") != "open" or suggestion.get("deleted"):
            return False
        if owner_of(suggestion) == self.me:
            return True  # ours (lease lapsed, interrupted, or an unknown claim): take it back
        return bool(detector.orphaned(suggestion, view))

    def claim(
        self,
        suggestion_id: str,
        detector: Detector,
        view: OrphanView,
        on_written: Callable[[], None] = lambda: None,
    ) -> Optional[Json]:
        """Try to take over a suggestion; the fresh suggestion when the claim held, else None."""
        current = self.api.suggestion(self.experiment_id, suggestion_id)
        if not self.claimable(current, detector, view):
            return None
        metadata = dict(current.get("metadata") or {})
        previous = owner_of(current)
        nonce = self.nonce()
        claim = dict(metadata)
        claim.pop("interrupted_at", None)
        if previous and (previous != self.me or is_interrupted(current)):
            # Keep who ran it before, where, and whether a spot interruption ended that run.
            claim[HISTORY_KEY] = with_previous_owner(metadata.get(HISTORY_KEY), metadata)
        if previous and previous != self.me:
            history = [p for p in str(metadata.get("previous_instance_ids") or "").split(",") if p]
            if previous not in history:
                history.append(previous)
            claim["previous_instance_ids"] = ",".join(history)[-500:]
            claim["adopted_by"] = self.me
        # The adopter's own identity replaces the previous owner's (kept in the history above).
        claim.update({k: v for k, v in self.identity().items() if v is not None})
        claim.update(
            instance_id=self.me,
            claim_nonce=nonce,
            lease_expires_at=round(self.clock() + self.lease_ttl_s, 3),
        )
        # One attempt only: a retried claim could land after the settle period ends.
        self.api.request(
            "PUT",
            f"/experiments/{self.experiment_id}/suggestions/{suggestion_id}",
            body={"metadata": claim},
            attempts=1,
        )
        on_written()
        self.sleep(self.settle_s)
        after = self.api.suggestion(self.experiment_id, suggestion_id)
        held = (after.get("metadata") or {}).get("claim_nonce") == nonce
        if after.get("state") != "open" or not held:
            return None
        return after

    def still_mine(self, suggestion_id: str, nonce: Optional[str]) -> bool:
        """Pre-post check: open, owned by me, and (for claims) still carrying my nonce."""
        current = self.api.suggestion(self.experiment_id, suggestion_id)
        metadata = current.get("metadata") or {}
        if current.get("state") != "open" or metadata.get("instance_id") != self.me:
            return False
        return nonce is None or metadata.get("claim_nonce") == nonce
