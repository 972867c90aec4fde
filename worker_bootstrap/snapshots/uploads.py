"""When to snapshot a running evaluation's checkpoint directory: each time the evaluation marks a
checkpoint complete (marker.py), at most every ``OPTFLEET_CHECKPOINT_INTERVAL`` seconds, and once
more when the agent leaves the suggestion open (a spot notice, a stop) after the evaluation's
own SIGTERM handler has finished.

The directory is copied to a staging directory first (the evaluation keeps writing; a copy during
which the marker moved is discarded and taken again), then uploaded in a background thread, so
the supervision loop keeps its lease and spot polls. One upload at a time per attempt.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from worker_bootstrap.evaluation import Task
from worker_bootstrap.logs import EventLog
from worker_bootstrap.snapshots.manifest import Manifest, SnapshotFile
from worker_bootstrap.snapshots.marker import Mark, read_mark
from worker_bootstrap.snapshots.store import (
    Cancelled,
    SnapshotError,
    SnapshotStore,
    Superseded,
    files_of,
)

MAX_BYTES_KEY = "OPTFLEET_CHECKPOINT_MAX_BYTES"
_CLOSE_WAIT_S = 10.0  # an upload past its last file finishes its manifest within this


@dataclass(eq=False)
class SnapshotUploads:
    """Gives each attempt its :class:`AttemptUploads`; ``store`` None: snapshots are off."""

    store: Optional[SnapshotStore]
    instance_id: str
    interval_s: float
    max_bytes: int
    staging: Path  # <state>/snapshots: copies being uploaded
    log: EventLog
    monotonic: Callable[[], float]

    def attempt(self, task: Task, generation: int) -> AttemptUploads:
        """Uploads of one attempt at ``task``; ``generation``: hand-overs before this owner."""
        return AttemptUploads(self, task, generation)


class AttemptUploads:
    """Snapshots of one attempt's checkpoint directory."""

    def __init__(self, uploads: SnapshotUploads, task: Task, generation: int) -> None:
        self.uploads = uploads
        self.store = uploads.store
        self.log = uploads.log
        self.task = task
        self.generation = generation
        self.marker = task.checkpoint_saved_file
        # A mark present at the start (an earlier attempt's, or a restored snapshot's) is not
        # uploaded again: the next one is.
        start = read_mark(self.marker)
        self.taken = start.signature if start is not None else None
        self.last_start: Optional[float] = None
        self.thread: Optional[threading.Thread] = None
        self.cancel = threading.Event()
        self.copies = 0
        self.too_large_logged = False

    @property
    def sid(self) -> str:
        return self.task.suggestion_id

    def poll(self) -> None:
        """Start an upload when a new checkpoint was marked and the interval has passed."""
        if self.store is None or (self.thread is not None and self.thread.is_alive()):
            return
        now = self.uploads.monotonic()
        if self.last_start is not None and now - self.last_start < self.uploads.interval_s:
            return
        staged = self._stage()
        if staged is not None:
            self.last_start = now
            self.thread = threading.Thread(target=self._upload, args=staged, daemon=True)
            self.thread.start()

    def final(self, clean_exit: bool, budget_s: float) -> None:
        """The agent leaves the suggestion open: wait for an upload in flight, then upload the
        checkpoint the evaluation marked while stopping (only when it exited by itself: one
        killed may have left a half-written directory). Bounded by ``budget_s``."""
        if self.store is None:
            return
        deadline = self.uploads.monotonic() + budget_s
        if self.thread is not None:
            self.thread.join(max(0.0, budget_s))
            if self.thread.is_alive():
                self.log.event("snapshot_upload_late", self.sid, budget_s=round(budget_s, 1))
                return  # the earlier upload used the whole window: one upload at a time
        if not clean_exit:
            self.log.event("snapshot_skipped", self.sid, reason="evaluation killed")
            return
        staged = self._stage()
        if staged is None:
            return
        self.thread = threading.Thread(target=self._upload, args=staged, daemon=True)
        self.thread.start()
        self.thread.join(max(0.0, deadline - self.uploads.monotonic()))
        if self.thread.is_alive():
            self.cancel.set()
            self.log.event("snapshot_upload_late", self.sid, budget_s=round(budget_s, 1))

    def close(self) -> None:
        """The attempt is over: an upload still sending files is given up before its manifest."""
        self.cancel.set()
        if self.thread is not None:
            self.thread.join(_CLOSE_WAIT_S)

    def _stage(self) -> Optional[tuple[Path, Mark, List[SnapshotFile]]]:
        """A copy of the directory as of a new mark, or None (no new mark, too large, or the
        evaluation marked again while it was copied: taken at the next look)."""
        mark = read_mark(self.marker)
        if mark is None or mark.signature == self.taken:
            return None
        files = files_of(self.task.checkpoint_dir)
        size = sum(f.size for f in files)
        if size > self.uploads.max_bytes:
            self.taken = mark.signature
            if not self.too_large_logged:
                self.too_large_logged = True
                self.log.event(
                    "snapshot_too_large",
                    self.sid,
                    bytes=size,
                    max_bytes=self.uploads.max_bytes,
                    setting=MAX_BYTES_KEY,
                    consequence="no snapshot: a new owner continues from the last one that fit, "
                    "or from zero",
                )
            return None
        self.copies += 1
        name = f"{self.task.checkpoint_dir.name}-{self.copies}"
        copy = self.uploads.staging / name
        try:
            shutil.rmtree(copy, ignore_errors=True)
            copy.mkdir(parents=True)
            for item in files:
                target = copy / item.path
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.task.checkpoint_dir / item.path, target)
        except OSError as exc:
            shutil.rmtree(copy, ignore_errors=True)
            self.taken = mark.signature
            self.log.event("snapshot_failed", self.sid, error=f"copying the checkpoint: {exc}")
            return None
        after = read_mark(self.marker)
        if after is None or after.signature != mark.signature:
            shutil.rmtree(copy, ignore_errors=True)
            return None
        self.taken = mark.signature
        copied = files_of(copy)  # the sizes as copied (the evaluation may have grown a file)
        return copy, mark, copied

    def _upload(self, copy: Path, mark: Mark, files: List[SnapshotFile]) -> None:
        if self.store is None:
            return
        started = self.uploads.monotonic()
        manifest = Manifest(
            version="",
            instance_id=self.uploads.instance_id,
            generation=self.generation,
            attempt=self.task.attempt,
            step=mark.step,
            saved_at=mark.saved_at,
            uploaded_at=0.0,
            files=files,
        )
        try:
            published = self.store.publish(self.sid, copy, manifest, self.cancel.is_set)
        except Cancelled:
            self.log.event("snapshot_abandoned", self.sid, step=mark.step)
        except Superseded as exc:
            self.log.event("snapshot_superseded", self.sid, reason=str(exc))
        except SnapshotError as exc:
            self.log.event("snapshot_upload_failed", self.sid, step=mark.step, error=str(exc))
        else:
            seconds = max(1e-6, self.uploads.monotonic() - started)
            self.log.event(
                "snapshot_uploaded",
                self.sid,
                version=published.version,
                step=published.step,
                files=len(files),
                bytes=published.total_bytes,
                seconds=round(seconds, 3),
                mb_per_s=round(published.total_bytes / seconds / 1e6, 2),
            )
        finally:
            shutil.rmtree(copy, ignore_errors=True)
