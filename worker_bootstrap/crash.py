"""Test hook: ``OPTFLEET_TEST_CRASH_AT=<step>[@N]`` makes the agent SIGKILL itself at a step.

Steps: ``after_suggestion_create`` (the server returned the suggestion, nothing journaled yet),
``during_evaluation`` (the evaluation has started and written into its checkpoint directory),
``after_evaluation`` (the result is journaled, not yet reported), ``after_report`` (the server
accepted the observation, the journal not yet updated), ``after_claim`` (an adoption claim was
written, before the settle wait). ``@N`` fires on the N-th time the step is reached (default 1).
Used only by tests and the demo to make crash points deterministic; unset in production.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Callable, Mapping, Optional

STEPS = (
    "after_suggestion_create",
    "during_evaluation",
    "after_evaluation",
    "after_report",
    "after_claim",
)


class CrashHook:
    """Kills the process (SIGKILL, no cleanup) when the configured step is reached."""

    def __init__(
        self,
        step: Optional[str] = None,
        occurrence: int = 1,
        kill: Optional[Callable[[], None]] = None,
    ) -> None:
        if step is not None and step not in STEPS:
            raise ValueError(f"OPTFLEET_TEST_CRASH_AT={step!r}: expected one of {STEPS}")
        self.step = step
        self.occurrence = occurrence
        self._seen = 0
        self._kill = kill or _sigkill_self

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> CrashHook:
        """Read ``OPTFLEET_TEST_CRASH_AT`` (``step`` or ``step@N``)."""
        raw = environ.get("OPTFLEET_TEST_CRASH_AT", "").strip()
        if not raw:
            return cls()
        step, _, count = raw.partition("@")
        try:
            occurrence = int(count) if count else 1
        except ValueError:
            raise ValueError(f"OPTFLEET_TEST_CRASH_AT={raw!r}: expected step or step@N") from None
        return cls(step, occurrence)

    def armed(self, step: str) -> bool:
        """True when reaching ``step`` now would fire (lets callers prepare, e.g. wait for I/O)."""
        return self.step == step and self._seen + 1 == self.occurrence

    def reached(self, step: str) -> None:
        """Call at each step; fires on the configured occurrence."""
        if self.step != step:
            return
        self._seen += 1
        if self._seen == self.occurrence:
            self._kill()


def _sigkill_self() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)
