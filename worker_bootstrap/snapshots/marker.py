"""The checkpoint-saved marker: the evaluation writes (or touches) ``OPTFLEET_CHECKPOINT_SAVED``
once ``OPTFLEET_CHECKPOINT_DIR`` holds a complete checkpoint; the agent snapshots only then, so a
half-written directory never travels. Standard library only."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from worker_bootstrap.journal import atomic_write

MARKER_ENV = "OPTFLEET_CHECKPOINT_SAVED"
MARKER_NAME = "checkpoint_saved.json"
_MAX_MARKER_BYTES = 4096


@dataclass(frozen=True)
class Mark:
    """One state of the marker: ``signature`` changes with every write or touch."""

    signature: Tuple[int, int, int]
    step: Optional[int]
    saved_at: float  # its modification time (unix seconds)


def write_mark(path: Path, step: Optional[int] = None) -> None:
    """Say a checkpoint is complete (``step``: the evaluation's own unit, optional)."""
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise TypeError(f"step must be an int >= 0 or None, got {step!r}")
    body = {} if step is None else {"step": step}
    atomic_write(path, json.dumps(body).encode())


def read_mark(path: Path) -> Optional[Mark]:
    """The marker's current state, or None when the evaluation never wrote it. Its content is
    optional (``touch`` works): a JSON object with an integer ``step`` names the step."""
    try:
        with path.open("rb") as handle:
            stat = os.fstat(handle.fileno())
            data = handle.read(_MAX_MARKER_BYTES)
    except OSError:
        return None
    return Mark(
        signature=(stat.st_mtime_ns, stat.st_size, stat.st_ino),
        step=_step_in(data),
        saved_at=stat.st_mtime,
    )


def _step_in(data: bytes) -> Optional[int]:
    try:
        raw = json.loads(data.decode("utf-8"))
    except ValueError:
        return None
    step = raw.get("step") if isinstance(raw, dict) else None
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return None
    return step
