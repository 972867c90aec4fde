"""Before an evaluation starts: bring the suggestion's latest complete snapshot into its
checkpoint directory, unless the directory here is as new (the owner resuming after a reboot).

The snapshot is downloaded to a sibling directory and swapped in only when every file arrived
with its size, so a failed download leaves the directory as it was (an adopter then starts from
zero, as without snapshots). The observation records where the evaluation continued from.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from worker_bootstrap.evaluation import Task
from worker_bootstrap.logs import EventLog
from worker_bootstrap.snapshots.marker import read_mark, write_mark
from worker_bootstrap.snapshots.store import SnapshotError, SnapshotStore

# Observation metadata keys of a restored snapshot.
RESUMED_FROM_INSTANCE = "resumed_from_instance"
RESUMED_FROM_STEP = "resumed_from_step"
SNAPSHOT_AGE = "resumed_snapshot_age_s"
RESTORE_SECONDS = "checkpoint_restore_s"
RESTORE_BYTES = "checkpoint_restore_bytes"


@dataclass(eq=False)
class SnapshotRestorer:
    """Restores snapshots from ``store`` (None: snapshots are off, nothing is restored)."""

    store: Optional[SnapshotStore]
    log: EventLog
    monotonic: Callable[[], float]
    wall: Callable[[], float]

    def restore(self, task: Task) -> Dict[str, Any]:
        """Fill ``task.checkpoint_dir`` from the latest snapshot when that is newer than what is
        here; then ``task.resumed`` is set and the observation metadata keys are returned."""
        if self.store is None:
            return {}
        sid = task.suggestion_id
        try:
            manifest = self.store.latest(sid)
        except SnapshotError as exc:
            self.log.event("snapshot_restore_failed", sid, error=str(exc))
            return {}
        if manifest is None:
            return {}
        local = read_mark(task.checkpoint_saved_file)
        if local is not None and local.saved_at >= manifest.saved_at and _has_files(task):
            self.log.event("snapshot_not_needed", sid, reason="the local checkpoint is as new")
            return {}
        incoming = task.checkpoint_dir.with_name(f".{task.checkpoint_dir.name}.restoring")
        shutil.rmtree(incoming, ignore_errors=True)
        started = self.monotonic()
        try:
            size = self.store.fetch(sid, manifest, incoming)
        except (SnapshotError, OSError) as exc:
            shutil.rmtree(incoming, ignore_errors=True)
            self.log.event("snapshot_restore_failed", sid, error=str(exc))
            return {}
        seconds = max(1e-6, self.monotonic() - started)
        shutil.rmtree(task.checkpoint_dir, ignore_errors=True)
        incoming.rename(task.checkpoint_dir)
        # The marker says what the directory now holds, so a later restart keeps it and the
        # next upload is the evaluation's next checkpoint, not this one again.
        task.run_dir.mkdir(parents=True, exist_ok=True)
        write_mark(task.checkpoint_saved_file, manifest.step)
        os.utime(task.checkpoint_saved_file, (manifest.saved_at, manifest.saved_at))
        task.resumed = True
        age = round(max(0.0, self.wall() - manifest.saved_at), 1)
        self.log.event(
            "snapshot_restored",
            sid,
            from_instance=manifest.instance_id,
            step=manifest.step,
            age_s=age,
            bytes=size,
            seconds=round(seconds, 3),
            mb_per_s=round(size / seconds / 1e6, 2),
        )
        keys: Dict[str, Any] = {
            RESUMED_FROM_INSTANCE: manifest.instance_id,
            SNAPSHOT_AGE: age,
            RESTORE_SECONDS: round(seconds, 3),
            RESTORE_BYTES: size,
        }
        if manifest.step is not None:
            keys[RESUMED_FROM_STEP] = manifest.step
        return keys


def _has_files(task: Task) -> bool:
    try:
        return any(task.checkpoint_dir.iterdir())
    except OSError:
        return False
