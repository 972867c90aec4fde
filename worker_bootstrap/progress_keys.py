"""Early stopping's names, given once (docs/agent.md, "Progress and early stopping").

The evaluation contract's two files (their variables and their names in the run directory), and
the keys of an observation whose training run the server told to stop.
"""

from __future__ import annotations

# The evaluation appends one JSON line per step here; the agent forwards each as a checkpoint.
PROGRESS_FILE_ENV = "OPTFLEET_PROGRESS_FILE"
PROGRESS_FILE_NAME = "progress.jsonl"
# The agent writes ``{"step", "reason"}`` here once the server said stop, before the SIGTERM.
STOP_FILE_ENV = "OPTFLEET_STOP_FILE"
STOP_FILE_NAME = "stop.json"

# Observation metadata of a run stopped early (absent otherwise).
STOPPED_EARLY = "stopped_early"  # 1
STOPPED_AT_STEP = "stopped_at_step"  # the step whose checkpoint was answered should_stop
STOPPING_REASON = "stopping_reason"  # the server's: convergence, max_checkpoints, asha_rung_9, ...
VALUES_AT_STEP = "values_at_step"  # the step of the progress line the values come from

OBSERVATION_KEYS = (STOPPED_EARLY, STOPPED_AT_STEP, STOPPING_REASON, VALUES_AT_STEP)
