#!/usr/bin/env python3
"""Example evaluation command for optfleet: the Hartmann-6 benchmark as a simulated training run.

Copy it and replace ``hartmann6`` with your own training code. It follows the agent's evaluation
contract (docs/agent.md):

- reads the assignments (JSON) from ``OPTFLEET_ASSIGNMENTS``;
- writes its result as JSON to ``OPTFLEET_RESULT_FILE``: ``{"value": x}``, or
  ``{"failed": true, "reason": "..."}`` when the run diverges;
- saves a checkpoint after every step into ``OPTFLEET_CHECKPOINT_DIR`` and continues from it when
  started again (after a reboot, or on another instance after a spot interruption);
- appends one progress line per step to ``OPTFLEET_PROGRESS_FILE`` (``{"step": 3, "value": x}``):
  the agent forwards each as a checkpoint of the suggestion's training run, and when the server's
  early-stopping rule stops the run, the agent SIGTERMs this process and reports the last line;
- on SIGTERM (spot interruption notice, agent shutdown, early stop) saves its checkpoint and exits
  143.

The "training" runs ``HARTMANN6_STEPS`` steps (default 10) spread over ``HARTMANN6_SECONDS``
seconds (default 3); the value after each step follows a learning curve that reaches the
Hartmann-6 value at the last step (a run worse at one step is worse at every step). Runs with
``x1 + x2 > HARTMANN6_DIVERGE_ABOVE`` (default 1.4) diverge halfway, so the failed-observation path
is exercised for real. Only the standard library is used.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

# Hartmann-6 constants (Surjanovic & Bingham, Virtual Library of Simulation Experiments).
ALPHA = (1.0, 1.2, 3.0, 3.2)
A = (
    (10.0, 3.0, 17.0, 3.5, 1.7, 8.0),
    (0.05, 10.0, 17.0, 0.1, 8.0, 14.0),
    (3.0, 3.5, 1.7, 10.0, 17.0, 8.0),
    (17.0, 8.0, 0.05, 10.0, 0.1, 14.0),
)
P = (
    (0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886),
    (0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991),
    (0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650),
    (0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381),
)
PARAMETERS = ("x1", "x2", "x3", "x4", "x5", "x6")
CHECKPOINT_NAME = "hartmann6-checkpoint.json"


def hartmann6(x: list[float]) -> float:
    """Return the Hartmann-6 function at ``x`` in [0, 1]^6 (global minimum -3.32237)."""
    total = 0.0
    for i in range(4):
        inner = sum(A[i][j] * (x[j] - P[i][j]) ** 2 for j in range(6))
        total += ALPHA[i] * math.exp(-inner)
    return -total


def read_assignments() -> list[float]:
    """Parse ``OPTFLEET_ASSIGNMENTS`` into the six coordinates, with errors naming the key."""
    raw = os.environ.get("OPTFLEET_ASSIGNMENTS")
    if raw is None:
        raise SystemExit("OPTFLEET_ASSIGNMENTS is not set (run this under worker-bootstrap)")
    assignments = json.loads(raw)
    values = []
    for name in PARAMETERS:
        if name not in assignments:
            raise SystemExit(f"OPTFLEET_ASSIGNMENTS: missing parameter {name!r}")
        value = float(assignments[name])
        if not 0.0 <= value <= 1.0:
            raise SystemExit(f"OPTFLEET_ASSIGNMENTS: {name}={value} is outside [0, 1]")
        values.append(value)
    return values


def write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` so that a reader (or a restart after SIGKILL) never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


def value_at_step(final: float, step: int, steps: int) -> float:
    """The "training" curve: from 0 at step 0 to ``final`` at the last step, fast at first."""
    return final * (1.0 - math.exp(-3.0 * step / steps)) / (1.0 - math.exp(-3.0))


def report_progress(progress: Path | None, step: int, value: float) -> None:
    """Append one progress line (a single write, so the agent never reads half of it)."""
    if progress is not None:
        with progress.open("a") as handle:
            handle.write(json.dumps({"step": step, "value": value}) + "\n")


def load_step(checkpoint: Path | None) -> int:
    """Return the number of steps already done according to the checkpoint (0 without one)."""
    if checkpoint is None or not checkpoint.exists():
        return 0
    try:
        return int(json.loads(checkpoint.read_text())["step"])
    except (ValueError, KeyError, TypeError):
        return 0  # a damaged checkpoint means starting over, not failing


def main() -> int:
    x = read_assignments()
    result_file = Path(os.environ["OPTFLEET_RESULT_FILE"])
    checkpoint_dir = os.environ.get("OPTFLEET_CHECKPOINT_DIR")
    checkpoint = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None
    progress_file = os.environ.get("OPTFLEET_PROGRESS_FILE")
    progress = Path(progress_file) if progress_file else None
    steps = int(os.environ.get("HARTMANN6_STEPS", "10"))
    step_s = float(os.environ.get("HARTMANN6_SECONDS", "3")) / steps
    diverge_above = float(os.environ.get("HARTMANN6_DIVERGE_ABOVE", "1.4"))

    suggestion_id = os.environ.get("OPTFLEET_SUGGESTION_ID")
    step = load_step(checkpoint)
    first_step = step
    if step:
        print(f"resuming from checkpoint at step {step}/{steps}", file=sys.stderr, flush=True)

    def save_and_exit(signum: int, _frame: object) -> None:
        if checkpoint is not None:
            write_json_atomically(
                checkpoint, {"step": step, "steps": steps, "suggestion_id": suggestion_id}
            )
        print(
            f"signal {signum}: checkpoint saved at step {step}/{steps}", file=sys.stderr, flush=True
        )
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, save_and_exit)

    final = hartmann6(x)
    while step < steps:
        time.sleep(step_s)  # stands in for one epoch of real training
        step += 1
        if x[0] + x[1] > diverge_above and step >= steps // 2:
            reason = (
                f"diverged: loss became NaN at step {step} "
                f"(x1 + x2 = {x[0] + x[1]:.3f} > {diverge_above})"
            )
            write_json_atomically(result_file, {"failed": True, "reason": reason})
            print(reason, file=sys.stderr, flush=True)
            return 0
        if checkpoint is not None:
            write_json_atomically(
                checkpoint, {"step": step, "steps": steps, "suggestion_id": suggestion_id}
            )
        report_progress(progress, step, value_at_step(final, step, steps))

    write_json_atomically(
        result_file,
        {"value": final, "metadata": {"steps": steps, "resumed_from_step": first_step}},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
