"""Scans: list open suggestions, resume this instance's own (oldest first), then adopt orphans;
and the last look when the experiment is done (docs/agent.md, "Scan cadence")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from worker_bootstrap.adoption import oldest_first, owner_of
from worker_bootstrap.config import Settings
from worker_bootstrap.create_marker import CreateMarker
from worker_bootstrap.journal import Journal
from worker_bootstrap.logs import EventLog
from worker_bootstrap.orphans import OrphanAdopter, Work
from worker_bootstrap.resuming import Resumer
from worker_bootstrap.scan_cadence import ScanCadence
from worker_bootstrap.scan_listing import ScanLister
from worker_bootstrap.stop_flags import StopFlags

Json = Dict[str, Any]


@dataclass(eq=False)
class Scanner:
    """Decides when to scan and what each scan does with what it lists."""

    settings: Settings
    instance_id: str
    cadence: ScanCadence
    lister: ScanLister
    resumer: Resumer
    adopter: OrphanAdopter
    journal: Journal
    stop: StopFlags
    log: EventLog
    monotonic: Callable[[], float]
    sleep: Callable[[float], None]
    work: Work
    # Whether a previous process died while creating a suggestion no scan has shown yet.
    create_marker: CreateMarker
    _full_scan_requested: bool = field(default=False, init=False)

    def request_full_scan(self) -> None:
        """Scan everything next time round (e.g. after an ambiguous suggestion create)."""
        self._full_scan_requested = True

    def due(self) -> bool:
        """Whether a scan is due now."""
        return self._full_scan_requested or self.cadence.due(self.monotonic())

    def scan(self, at_start: bool = False, open_hint: Optional[int] = None) -> None:
        """List open suggestions (all, only lapsed ones, or at start only mine: scan_cadence.py);
        resume mine (oldest first), then adopt orphans."""
        full = at_start or self._full_scan_requested or self.adopter.last_view is None
        self._full_scan_requested = False
        if at_start and self.cadence.boots_own_only(open_hint):
            suggestions, kind = self.lister.own_at_start(int(open_hint or 0))
        else:
            suggestions, kind = self.lister.for_scan(full)
        mine = self._mine(suggestions)
        self.log.event(
            f"{kind}_suggestions_listed", open=len(suggestions), mine=len(mine), at_start=at_start
        )
        if at_start:
            known = {str(s.get("id")) for s in mine}
            eid = self.settings.experiment_id
            for entry in self.journal.entries(eid):
                if entry.suggestion_id not in known:
                    # Closed, deleted or taken over while we were down: nothing left to do.
                    self.journal.forget(eid, entry.suggestion_id)
        if not self._resume_all(mine):
            return
        if self.settings.adopt and not self.stop.stop_requested() and kind != "own":
            self.adopter.adopt(suggestions, self.adopter.last_view if kind == "lapsed" else None)

    def last_look(self) -> None:
        """At the budget or the cap: nothing of ours, and no orphan we can see, left open.

        While few suggestions are open one full scan does both (resume mine, adopt orphans).
        At scale a full list per agent would be the fleet's one N² moment, so the agent lists
        only its own suggestions and takes the (sampled, possibly lapsed-only) orphan look.
        """
        wait_s = self.create_marker.wait_left_s(self.settings.http_timeout_s)
        if wait_s > 0:
            # A previous process died while creating a suggestion that no scan has shown yet:
            # the server may still be computing it. Wait until one request timeout has passed
            # since that create started, so the lists below see it rather than leave it open.
            self.log.event("waiting_for_create_in_flight", seconds=round(wait_s, 3))
            self.sleep(wait_s)
        self.create_marker.settled()
        open_seen = self.lister.open_seen
        final_look = self.settings.adopt and self.cadence.takes_final_look(open_seen)
        small = self.settings.adopt_scan_rows <= 0 or open_seen <= self.settings.adopt_scan_rows
        if final_look and small:
            self._full_scan_requested = True  # own suggestions with fresh leases listed too
            self.scan()
            return
        self._finish_own_left_open()
        if final_look and not self.stop.stop_requested():
            self.scan()

    def _finish_own_left_open(self) -> None:
        """Before draining, finish this instance's suggestions that are still open.

        A create in flight when the previous process was killed can commit after this process's
        scan at start; its lease is fresh, so the lapsed-only final look would not list it and
        it would stay open. One list filtered by owner (a plain server ignores the filter and
        answers the full list, filtered here) finds it.
        """
        rows = self.lister.own()
        mine = self._mine(rows)
        self.log.event("own_suggestions_listed", open=len(rows), mine=len(mine), at_start=False)
        self._resume_all(mine)

    def _mine(self, suggestions: List[Json]) -> List[Json]:
        """Own suggestions in the order to resume them: the ones whose evaluation had started
        first (their work, checkpoints and lease are the ones at stake: a never-started one from
        a timed-out create must not keep the interrupted one waiting until its lease lapses),
        then oldest first."""
        eid = self.settings.experiment_id

        def started_first(suggestion: Json) -> Any:
            entry = self.journal.load(eid, str(suggestion.get("id")))
            return (0 if entry is not None and entry.attempts > 0 else 1, oldest_first(suggestion))

        return sorted(
            (s for s in suggestions if owner_of(s) == self.instance_id), key=started_first
        )

    def _resume_all(self, mine: List[Json]) -> bool:
        """Take back and evaluate each of ``mine``; False when a stop or a spot notice cut it
        short."""
        for suggestion in mine:
            if self.stop.halted():
                return False
            taken = self.resumer.take_back(suggestion)
            if taken is None:
                continue
            if not taken.started_before:
                # Perhaps the create a dead process left in flight: then nothing to wait for.
                self.create_marker.picked_up(taken.suggestion.get("created"))
            self.work(taken.suggestion, taken.started_before)
        return True
