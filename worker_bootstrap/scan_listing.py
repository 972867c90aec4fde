"""What a scan lists: only this instance's suggestions, only those with a lapsed lease (the
server's filters, where it applies them), or every open suggestion (scan_cadence.py says when)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

from worker_bootstrap.adoption import owner_of
from worker_bootstrap.api_client import ApiClient, ApiError
from worker_bootstrap.clocks import Clocks
from worker_bootstrap.config import Settings
from worker_bootstrap.logs import EventLog
from worker_bootstrap.scan_cadence import ScanCadence

Json = Dict[str, Any]


@dataclass(eq=False)
class ScanLister:
    """Lists open suggestions for a scan and tells the cadence what each list cost.

    Each list comes with its kind: ``own`` (this instance's only), ``lapsed`` (filtered by the
    server) or ``open`` (all of them).
    """

    api: ApiClient
    settings: Settings
    instance_id: str
    cadence: ScanCadence
    log: EventLog
    clocks: Clocks
    open_seen: int = field(default=0, init=False)  # how many the last full list had

    def own_at_start(self, open_hint: int) -> Tuple[List[Json], str]:
        """This instance's open suggestions, if the server applies ``metadata.instance_id``."""
        now = self.clocks.monotonic()
        try:
            rows = self.own()
        except ApiError as exc:
            if exc.status != 400:
                raise
            rows = self._all_open()
        else:
            if all(owner_of(s) == self.instance_id for s in rows):
                self.cadence.own_scan_done(now, open_hint)
                return rows, "own"
        # Ignored or refused: the answer is (or the retry was) every open suggestion.
        self._record_full_list(now, rows)
        return rows, "open"

    def for_scan(self, full: bool) -> Tuple[List[Json], str]:
        """The suggestions to scan: ``open`` (all) or ``lapsed`` (filtered by the server)."""
        now = self.clocks.monotonic()
        if not full and not self.cadence.wants_full(now):
            try:
                rows, applied = self.api.lapsed_open_suggestions(
                    self.settings.experiment_id, self.clocks.wall(), self.settings.page_limit
                )
            except ApiError as exc:
                if exc.status != 400:
                    raise
                self.log.event("lease_filter_unsupported", status=exc.status, error=exc.message)
                self.cadence.filter_unsupported()
            else:
                if applied:
                    self.cadence.filtered_scan_done(now, len(rows), self.open_seen)
                    return rows, "lapsed"
                # Ignored by the server: the answer already is every open suggestion.
                self.log.event("lease_filter_unsupported", status=200, error="filter ignored")
                self.cadence.filter_unsupported()
                self._record_full_list(now, rows)
                return rows, "open"
        rows = self._all_open()
        self._record_full_list(now, rows)
        return rows, "open"

    def own(self) -> List[Json]:
        """The open suggestions filtered by ``metadata.instance_id`` (a plain server ignores the
        filter and answers all of them)."""
        own = {"metadata.instance_id": self.instance_id}
        eid, limit = self.settings.experiment_id, self.settings.page_limit
        return list(self.api.open_suggestions(eid, limit, own))

    def _all_open(self) -> List[Json]:
        eid, limit = self.settings.experiment_id, self.settings.page_limit
        return list(self.api.open_suggestions(eid, limit))

    def _record_full_list(self, now: float, rows: List[Json]) -> None:
        # The more open suggestions, the rarer this agent's full scans (scan_cadence.py).
        self.open_seen = len(rows)
        self.cadence.full_scan_done(now, len(rows))
