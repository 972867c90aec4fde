"""Snapshots deleted once a suggestion's observation was accepted: the reporter, plus the
manifest and the versions removed (a failure is logged; the bucket's lifecycle rule removes
what stays)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from worker_bootstrap.journal import REPORTED, Entry
from worker_bootstrap.reporting import ObservationReporter
from worker_bootstrap.snapshots.store import SnapshotError, SnapshotStore


@dataclass(eq=False)
class SnapshotClosingReporter(ObservationReporter):
    """An :class:`ObservationReporter` that deletes the suggestion's snapshots after it."""

    snapshots: Optional[SnapshotStore] = None

    def report(self, entry: Entry, force_check: bool = False) -> None:
        super().report(entry, force_check)
        if self.snapshots is None or entry.stage != REPORTED:
            return  # not accepted here (dropped: another owner's, or the experiment is gone)
        sid = entry.suggestion_id
        try:
            deleted = self.snapshots.close(sid)
        except SnapshotError as exc:
            self.log.event("snapshot_delete_failed", sid, error=str(exc))
            return
        self.log.event("snapshots_deleted", sid, objects=deleted)
