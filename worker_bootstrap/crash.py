"""Test hook: ``OPTFLEET_TEST_CRASH_AT=<step>[@N]`` makes the agent SIGKILL itself at a step.

Steps (steps.py): ``after_suggestion_create`` (the server returned the suggestion, nothing
journaled yet), ``during_evaluation`` (the evaluation has started and written into its checkpoint
directory), ``after_evaluation`` (the result is journaled, not yet reported), ``after_report`` (the
server accepted the observation, the journal not yet updated), ``after_claim`` (an adoption claim
was written, before the settle wait), ``after_checkpoint_post`` (the server stored a progress
line's checkpoint, its answer not yet acted on or journaled). ``@N`` fires on the N-th time the
step is reached (default 1). Used only by tests and the demo to make crash points deterministic;
unset in production, where the agent gets no hook at all (:func:`hooks_from_environ`).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Callable, Mapping, Optional

from worker_bootstrap.steps import DURING_EVALUATION, NO_HOOKS, STEPS, StepHooks

if TYPE_CHECKING:
    from worker_bootstrap.evaluation import Running, Task

# How long ``during_evaluation`` waits for the evaluation's first checkpoint before firing anyway.
CHECKPOINT_WAIT_S = 30.0


class CrashHook:
    """Kills the process (SIGKILL, no cleanup) when the configured step is reached."""

    def __init__(
        self,
        step: Optional[str] = None,
        occurrence: int = 1,
        kill: Optional[Callable[[], None]] = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if step is not None and step not in STEPS:
            raise ValueError(f"OPTFLEET_TEST_CRASH_AT={step!r}: expected one of {STEPS}")
        self.step = step
        self.occurrence = occurrence
        self._seen = 0
        self._kill = kill or _sigkill_self
        self._monotonic = monotonic
        self._sleep = sleep

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

    def evaluation_started(self, running: Running, task: Task) -> None:
        """``during_evaluation``: fires once the evaluation has written a checkpoint (or ended),
        so the restarted agent has something to resume from."""
        if self.armed(DURING_EVALUATION):
            deadline = self._monotonic() + CHECKPOINT_WAIT_S
            while self._monotonic() < deadline and running.poll() is None:
                if task.checkpoint_dir.exists() and any(task.checkpoint_dir.iterdir()):
                    break
                self._sleep(0.02)
        self.reached(DURING_EVALUATION)


def hooks_from_environ(environ: Mapping[str, str]) -> StepHooks:
    """The crash hook when ``OPTFLEET_TEST_CRASH_AT`` is set, else no hooks (ValueError when it is
    malformed)."""
    hook = CrashHook.from_environ(environ)
    return NO_HOOKS if hook.step is None else hook


def _sigkill_self() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)
