"""The create-in-flight marker: a file in the state directory while a suggestion create is in
flight, so the next process knows the server may still be computing one no scan has shown yet.

A marker left by a dead process stays until a scan picked up the never-started suggestion it
stood for, or the last look waited for it: this process's own creates must not erase it (the
earlier create may land after theirs).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

CREATE_MARKER = "create-in-flight"


@dataclass(eq=False)
class CreateMarker:
    """The marker of one state directory."""

    state_dir: Path
    clock: Callable[[], float] = time.time
    _inherited: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self._inherited = self.path.exists()

    @property
    def path(self) -> Path:
        return self.state_dir / CREATE_MARKER

    @property
    def inherited(self) -> bool:
        """Whether a previous process died while creating a suggestion not yet accounted for."""
        return self._inherited

    @contextmanager
    def creating(self) -> Iterator[None]:
        """Around one create: the marker exists (its time is the latest create's start)."""
        self.path.write_text(repr(self.clock()))
        try:
            yield
        finally:
            if not self._inherited:
                self.path.unlink(missing_ok=True)

    def wait_left_s(self, timeout_s: float) -> float:
        """How long, at most ``timeout_s``, until an inherited create must have landed."""
        started = self.started_at() if self._inherited else None
        if started is None:
            return 0.0
        return max(0.0, min(timeout_s, started + timeout_s - self.clock()))

    def picked_up(self, created: object) -> None:
        """A never-started suggestion of this instance, created at ``created`` (server time),
        was picked up: if it was created after the inherited create started, that is the one
        (a second clock's skew allowed); an older one leaves the marker in place."""
        started = self.started_at() if self._inherited else None
        if started is None:
            return
        is_time = isinstance(created, (int, float)) and not isinstance(created, bool)
        if is_time and float(created) >= started - 1.0:  # type: ignore[arg-type]
            self.settled()

    def settled(self) -> None:
        """The inherited create landed (picked up) or was waited for: forget the marker."""
        if self._inherited:
            self._inherited = False
            self.path.unlink(missing_ok=True)

    def started_at(self) -> Optional[float]:
        """When the latest create in flight started, if a marker exists (an unreadable one:
        now, the cautious answer)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        try:
            return float(text)
        except ValueError:
            return self.clock()
