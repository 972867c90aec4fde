"""One structured JSON line per event on stdout (journald), with secrets scrubbed."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from typing import IO, Any, Callable, Iterator, Optional


class Redactor:
    """Replaces every registered secret by ``***`` in text about to leave the process."""

    def __init__(self) -> None:
        self._secrets: list[str] = []

    def add(self, secret: Optional[str]) -> None:
        """Register ``secret`` (ignored when empty or too short to be a meaningful secret)."""
        if secret and len(secret) >= 4 and secret not in self._secrets:
            self._secrets.append(secret)

    def scrub(self, text: str) -> str:
        """Return ``text`` with every registered secret replaced."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text


class EventLog:
    """Writes ``{"ts", "event", "instance_id", "suggestion_id", ...}`` lines, one per event."""

    def __init__(
        self,
        stream: Optional[IO[str]] = None,
        redactor: Optional[Redactor] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._stream = stream
        self.redactor = redactor or Redactor()
        self._clock = clock
        self._lock = threading.Lock()
        self.instance_id: Optional[str] = None
        self.experiment_id: Optional[str] = None
        # The suggestion being evaluated or reported, named by a fatal ``agent_error`` line.
        self.working_on: Optional[str] = None

    def event(self, event: str, suggestion_id: Optional[str] = None, **fields: Any) -> None:
        """Emit one event line; ``fields`` must be JSON-serialisable (others are str()-ed)."""
        record: dict[str, Any] = {
            "ts": round(self._clock(), 3),
            "event": event,
            "instance_id": self.instance_id,
            "experiment_id": self.experiment_id,
            "suggestion_id": suggestion_id,
        }
        record.update(fields)
        line = self.redactor.scrub(json.dumps(record, default=str, sort_keys=False))
        stream = self._stream if self._stream is not None else sys.stdout
        with self._lock:
            stream.write(line + "\n")
            stream.flush()

    @contextlib.contextmanager
    def working_on_suggestion(self, suggestion_id: str) -> Iterator[None]:
        """Name ``suggestion_id`` in a fatal ``agent_error`` line raised while the body runs."""
        self.working_on = suggestion_id
        yield
        self.working_on = None  # skipped when the body raises: the error names the suggestion

    def error(self, kind: str, message: str) -> None:
        """The one ``agent_error`` line a failed run ends with (same fields as every event)."""
        self.event("agent_error", self.working_on, kind=kind, error=message)
