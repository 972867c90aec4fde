"""Named points of the agent's work where a test may act (crash.py SIGKILLs the agent at one).

The agent calls its :class:`StepHooks` at each point. Production runs get :data:`NO_HOOKS`; the
runner passes the crash hook instead only when ``OPTFLEET_TEST_CRASH_AT`` is set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from worker_bootstrap.evaluation import Running, Task

AFTER_SUGGESTION_CREATE = "after_suggestion_create"  # the server returned it, nothing journaled
DURING_EVALUATION = "during_evaluation"  # the evaluation started
AFTER_EVALUATION = "after_evaluation"  # the result is journaled, not yet reported
AFTER_REPORT = "after_report"  # the server accepted the observation, the journal not updated
AFTER_CLAIM = "after_claim"  # an adoption claim was written, before the settle wait
# The server stored a progress line's checkpoint; its answer neither acted on nor journaled.
AFTER_CHECKPOINT_POST = "after_checkpoint_post"
STEPS = (
    AFTER_SUGGESTION_CREATE,
    DURING_EVALUATION,
    AFTER_EVALUATION,
    AFTER_REPORT,
    AFTER_CLAIM,
    AFTER_CHECKPOINT_POST,
)


class StepHooks(Protocol):
    """What the agent tells about its progress through the steps above."""

    def reached(self, step: str) -> None:
        """The agent reached ``step``."""

    def evaluation_started(self, running: Running, task: Task) -> None:
        """The evaluation of ``task`` started (the ``during_evaluation`` step)."""


class NoHooks:
    """Production: nothing happens at any step."""

    def reached(self, step: str) -> None:
        return None

    def evaluation_started(self, running: Running, task: Task) -> None:
        return None


NO_HOOKS = NoHooks()
