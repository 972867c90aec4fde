"""A clock tests move by hand (a server's ``clock=``), so time-outs are crossed without waiting."""

from __future__ import annotations

START = 1_767_225_600.0  # 2026-01-01 00:00 UTC


class SettableClock:
    """Returns ``now``; the test sets or advances it."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
