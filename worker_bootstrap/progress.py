"""The progress file: one JSON line per step of an evaluation (docs/agent.md, "Progress and early
stopping").

A line is ``{"step": 3, "value": 0.71}`` or ``{"step": 3, "values": [{"name", "value",
"value_stddev"?}]}``, optionally with ``"metadata"`` (at most 5 keys, a checkpoint's limit). The
evaluation appends lines; the agent reads complete lines from a byte offset it journals, so a
line half written when the agent looks is read whole the next time. Standard library only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from worker_bootstrap.journal import atomic_write
from worker_bootstrap.metadata import merged
from worker_bootstrap.results import InvalidResult, values_from

MAX_LINE_BYTES = 65536  # a longer line is refused (and never held in memory whole)
MAX_READ_BYTES = 1 << 20  # per look, so a runaway writer cannot stall the agent
MAX_METADATA_KEYS = 5  # the server's limit for a checkpoint's metadata
_LINE_KEYS = {"step", "value", "value_stddev", "values", "metadata"}

# Why a line is not forwarded (each kind is logged once per evaluation).
NOT_JSON = "not_json"
NOT_FINITE = "not_finite"
INVALID = "invalid"
TOO_LONG = "too_long"
NON_MONOTONIC = "non_monotonic"


@dataclass
class ProgressLine:
    """One step's values; ``end`` is the byte offset just past the line."""

    step: int
    values: List[Dict[str, Any]]
    metadata: Dict[str, Any] = field(default_factory=dict)
    end: int = 0


class BadLine(ValueError):
    """A line that does not follow the contract; ``kind`` is one of the constants above."""

    def __init__(self, kind: str, message: str, end: int = 0) -> None:
        super().__init__(message)
        self.kind = kind
        self.end = end


def parse_line(text: str, end: int = 0) -> ProgressLine:
    """The line's step, values and metadata; :class:`BadLine` saying why not."""

    def reject_constant(name: str) -> Any:
        raise BadLine(NOT_FINITE, f"{name} is not a finite number", end)

    try:
        raw = json.loads(text, parse_constant=reject_constant)
    except BadLine:
        raise
    except ValueError as exc:
        raise BadLine(NOT_JSON, f"not JSON ({exc})", end) from None
    if not isinstance(raw, dict):
        raise BadLine(INVALID, "a progress line must be a JSON object", end)
    unknown = set(raw) - _LINE_KEYS
    if unknown:
        raise BadLine(INVALID, f"unknown keys {sorted(unknown)}", end)
    step = raw.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise BadLine(INVALID, f"step must be an integer >= 0, got {json.dumps(step)[:40]}", end)
    if ("value" in raw) == ("values" in raw):
        raise BadLine(INVALID, 'give exactly one of "value" and "values"', end)
    if "values" in raw and "value_stddev" in raw:
        raise BadLine(INVALID, 'value_stddev goes inside each of "values"', end)
    if "value" in raw and isinstance(raw["value"], (list, dict)):
        raise BadLine(INVALID, 'value must be a number (a list goes in "values")', end)
    try:
        if "values" in raw:
            values = values_from(raw["values"])
        else:
            single = {"value": raw["value"], "value_stddev": raw.get("value_stddev")}
            values = values_from([single])
    except InvalidResult as exc:
        kind = NOT_FINITE if "finite" in str(exc) else INVALID
        raise BadLine(kind, str(exc), end) from None
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise BadLine(INVALID, "metadata must be an object", end)
    if len(metadata) > MAX_METADATA_KEYS:
        count = len(metadata)
        raise BadLine(INVALID, f"metadata has {count} keys, at most {MAX_METADATA_KEYS}", end)
    return ProgressLine(step=step, values=values, metadata=dict(merged(metadata)), end=end)


@dataclass
class RawLine:
    """A complete line's text (None when it was too long to keep) and the offset past it."""

    text: Optional[str]
    end: int


class ProgressTail:
    """Reads the complete lines appended to ``path`` since ``offset``."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.offset = offset
        self.truncated = False  # the file became shorter than the offset: read again from 0
        self._skipping = False  # inside a line already refused as too long

    def read(self, final: bool = False) -> List[RawLine]:
        """Lines completed since the last call; ``final``: the evaluation has ended, so a last
        line without its newline counts too."""
        try:
            with self.path.open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size < self.offset:
                    self.offset, self.truncated, self._skipping = 0, True, False
                handle.seek(self.offset)
                data = handle.read(MAX_READ_BYTES)
        except FileNotFoundError:
            return []
        base = self.offset
        more = len(data) == MAX_READ_BYTES  # the file may go on beyond this read
        lines: List[RawLine] = []
        pos = 0
        while True:
            newline = data.find(b"\n", pos)
            if newline < 0:
                break
            self._take(data[pos:newline], base + newline + 1, lines)
            pos = newline + 1
        rest = data[pos:]
        if rest:
            if self._skipping:
                pos = len(data)  # still inside a line refused as too long
            elif len(rest) > MAX_LINE_BYTES:
                lines.append(RawLine(None, base + len(data)))
                self._skipping = True  # the rest of it, up to its newline, is dropped
                pos = len(data)
            elif final and not more:
                self._take(rest, base + len(data), lines)
                pos = len(data)
        self.offset = base + pos
        return lines

    def _take(self, chunk: bytes, end: int, lines: List[RawLine]) -> None:
        if self._skipping:
            self._skipping = False  # the end of a line refused as too long
        elif len(chunk) > MAX_LINE_BYTES:
            lines.append(RawLine(None, end))
        elif chunk.strip():
            lines.append(RawLine(chunk.decode("utf-8", errors="replace"), end))


def parse_raw(raw: RawLine) -> ProgressLine:
    """Parse a line read by :class:`ProgressTail` (:class:`BadLine` when it breaks the contract)."""
    if raw.text is None:
        raise BadLine(TOO_LONG, f"line longer than {MAX_LINE_BYTES} bytes", raw.end)
    return parse_line(raw.text, raw.end)


def last_valid_line(path: Path) -> Optional[ProgressLine]:
    """The evaluation's latest word: the last line, in file order, that parses and whose step is
    above every earlier accepted line's (what forwarding accepts). None without one."""
    tail = ProgressTail(path)
    last: Optional[ProgressLine] = None
    while True:
        before = tail.offset
        for raw in tail.read(final=True):
            try:
                line = parse_raw(raw)
            except BadLine:
                continue
            if last is None or line.step > last.step:
                last = line
        if tail.offset == before:
            return last


def append_line(
    path: Path,
    step: int,
    value: Optional[float] = None,
    values: Optional[List[Dict[str, Any]]] = None,
    metadata: Optional[Dict[str, Any]] = None,
) -> None:
    """Append one progress line with a single ``write`` (the agent never sees half of it).

    TypeError for a call that cannot make a line (a non-integer step; neither or both of
    ``value`` and ``values``); values themselves are the agent's to judge (a NaN is logged by it
    and not forwarded, never raised here)."""
    if isinstance(step, bool) or not isinstance(step, int):
        raise TypeError(f"step must be an int, got {type(step).__name__}")
    if (value is None) == (values is None):
        raise TypeError("give exactly one of value and values")
    line: Dict[str, Any] = {"step": step}
    if values is not None:
        line["values"] = values
    else:
        line["value"] = value
    if metadata:
        line["metadata"] = metadata
    data = (json.dumps(line, default=str) + "\n").encode()
    fd = os.open(str(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def end_torn_line(path: Path) -> bool:
    """End a last line left without its newline (a writer killed mid-line), so the next
    attempt's first line is not glued to it; True when one was ended. Call it only while no
    evaluation is writing."""
    try:
        with path.open("rb+") as handle:
            if handle.seek(0, os.SEEK_END) == 0:
                return False
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) == b"\n":
                return False
            handle.write(b"\n")
            return True
    except FileNotFoundError:
        return False


def write_stop_file(path: Path, step: int, reason: str) -> None:
    """Tell the evaluation the server stopped its run (atomically: it is whole or absent)."""
    atomic_write(path, json.dumps({"step": step, "reason": reason}).encode())


def stop_decided(path: Path) -> bool:
    """Whether the agent wrote the stop file."""
    return path.exists()
