"""Crash-safe local journal: one JSON file per suggestion, written atomically.

Stages: ``created`` (the suggestion exists and is ours), ``evaluated`` (a result to report is
recorded), ``reported`` (the server accepted the observation; cleanup pending). A file is written
to a temporary name, fsynced, renamed over the old one and the directory fsynced, so after a crash
a record is either the old or the new version, never a torn one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

CREATED = "created"
EVALUATED = "evaluated"
REPORTED = "reported"


@dataclass
class Entry:
    """What the agent must remember about one suggestion across a crash."""

    experiment_id: str
    suggestion_id: str
    stage: str = CREATED
    assignments: Dict[str, Any] = field(default_factory=dict)
    created: int = 0
    attempts: int = 0
    observation: Optional[Dict[str, Any]] = None
    child_pid: Optional[int] = None
    child_start: Optional[str] = None
    adopted: bool = False
    claim_nonce: Optional[str] = None
    previous_instance_ids: str = ""
    lease_expires_at: float = 0.0
    # Early stopping (progress_forwarding.py): the suggestion's training run, the last step the
    # server acknowledged and the progress file's offset just past its line, the stop decided.
    training_run_id: Optional[str] = None
    progress_step: Optional[int] = None
    progress_offset: int = 0
    stopped_at_step: Optional[int] = None
    stopping_reason: Optional[str] = None


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a crash leaves either the old or the new content.

    On failure (disk full, read-only file system) the old file stays as it was, the temporary
    file is removed, and the ``OSError`` raised names ``path`` (``os.write`` and ``os.fsync``
    errors carry no file name of their own).
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                # A short write is legal (and likely when the disk is nearly full): loop.
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(str(tmp), str(path))
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(str(directory), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(directory)) from exc


class StateDirError(Exception):
    """The state directory cannot be written (full, read-only, not permitted)."""


# What a write failure means for the state directory, by errno.
_STATE_PROBLEMS = {
    errno.ENOSPC: "is full",
    errno.EDQUOT: "is over its disk quota",
    errno.EROFS: "is read-only",
    errno.EACCES: "is not writable",
    errno.EPERM: "is not writable",
}


def state_dir_error(exc: OSError, state_dir: Path) -> Optional[StateDirError]:
    """A one-line error for ``exc`` when it concerns a file in ``state_dir``, else None.

    E.g. ``state directory /var/lib/optfleet is full: No space left on device (ENOSPC) at
    journal/42-7.json``.
    """
    root = os.path.abspath(str(state_dir))
    for name in (exc.filename, exc.filename2):
        if name is None:
            continue
        path = os.path.abspath(os.fsdecode(name))
        if path != root and not path.startswith(root + os.sep):
            continue
        where = os.path.relpath(path, root)
        problem = _STATE_PROBLEMS.get(exc.errno or 0, "cannot be used")
        code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        return StateDirError(
            f"state directory {root} {problem}: {exc.strerror} ({code}) at {where}"
        )
    return None


class Journal:
    """The journal directory ``<state_dir>/journal`` and checkpoints ``<state_dir>/checkpoints``."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.directory = state_dir / "journal"
        self.checkpoints = state_dir / "checkpoints"
        self.runs = state_dir / "runs"
        for path in (self.directory, self.checkpoints, self.runs):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, experiment_id: str, suggestion_id: str) -> Path:
        return self.directory / f"{_safe(experiment_id)}-{_safe(suggestion_id)}.json"

    def checkpoint_dir(self, experiment_id: str, suggestion_id: str) -> Path:
        """The suggestion's checkpoint directory (kept across restarts)."""
        return self.checkpoints / f"{_safe(experiment_id)}-{_safe(suggestion_id)}"

    def run_dir(self, experiment_id: str, suggestion_id: str) -> Path:
        """Where the evaluation's result file and output logs go."""
        return self.runs / f"{_safe(experiment_id)}-{_safe(suggestion_id)}"

    def save(self, entry: Entry) -> None:
        """Record ``entry`` atomically."""
        data = json.dumps(asdict(entry), sort_keys=True).encode()
        atomic_write(self._path(entry.experiment_id, entry.suggestion_id), data)

    def load(self, experiment_id: str, suggestion_id: str) -> Optional[Entry]:
        """The entry for a suggestion, or None."""
        path = self._path(experiment_id, suggestion_id)
        if not path.exists():
            return None
        return _entry_from(json.loads(path.read_text()))

    def entry_for(self, experiment_id: str, suggestion: Dict[str, Any]) -> Entry:
        """The journaled entry of a suggestion (its JSON from the API), or a new one, not saved."""
        suggestion_id = str(suggestion["id"])
        return self.load(experiment_id, suggestion_id) or Entry(
            experiment_id=experiment_id,
            suggestion_id=suggestion_id,
            assignments=dict(suggestion.get("assignments") or {}),
            created=int(suggestion.get("created") or 0),
        )

    def entries(self, experiment_id: str) -> List[Entry]:
        """All entries of one experiment (unreadable files are skipped: they are never torn)."""
        found: List[Entry] = []
        for path in sorted(self.directory.glob(f"{_safe(experiment_id)}-*.json")):
            try:
                entry = _entry_from(json.loads(path.read_text()))
            except (ValueError, TypeError):
                continue
            if entry.experiment_id == experiment_id:
                found.append(entry)
        return found

    def forget(self, experiment_id: str, suggestion_id: str) -> None:
        """Drop a finished suggestion: checkpoint and run directories first, the record last."""
        shutil.rmtree(self.checkpoint_dir(experiment_id, suggestion_id), ignore_errors=True)
        shutil.rmtree(self.run_dir(experiment_id, suggestion_id), ignore_errors=True)
        path = self._path(experiment_id, suggestion_id)
        if path.exists():
            path.unlink()
            _fsync_dir(self.directory)


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._" else "_" for ch in text)


def _entry_from(raw: Any) -> Entry:
    if not isinstance(raw, dict):
        raise TypeError("journal entry is not an object")
    known = set(Entry.__dataclass_fields__)
    return Entry(**{key: value for key, value in raw.items() if key in known})
