"""Evaluation command for the progress tests: appends progress lines, behaviour chosen by EVAL_MODE.

Each start and each SIGTERM appends a JSON line to EVAL_LOG. A step is one line of
``EVAL_CURVE`` (a JSON list of values, step i+1 for item i) unless EVAL_STEPS gives the steps;
the last step written is kept in the checkpoint directory, so a resumed run continues after it.
An item may be a number (``"value"``) or a list of ``{"name", "value"}`` (``"values"``). Modes:

- ``finish``: every line (EVAL_STEP_S apart), then the result file (the curve's last item), exit 0;
- ``until_stopped``: every line, each followed by up to EVAL_STEP_S waiting for the stop file;
  then wait for SIGTERM (exit 143), at most 60 s (then the result file, which a test refuses);
- ``result_then_stop``: lines up to EVAL_RESULT_AT, the result file ``{"value": -1}``, the other
  lines, then as ``until_stopped``;
- ``raw``: writes EVAL_LINES (a JSON list of strings) as lines, then ``{"value": EVAL_RESULT}``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

mode = os.environ.get("EVAL_MODE", "finish")
log_path = os.environ.get("EVAL_LOG")
sid = os.environ["OPTFLEET_SUGGESTION_ID"]
checkpoint = Path(os.environ["OPTFLEET_CHECKPOINT_DIR"]) / "last_step"
result_file = Path(os.environ["OPTFLEET_RESULT_FILE"])
progress_file = Path(os.environ["OPTFLEET_PROGRESS_FILE"])
stop_file = Path(os.environ["OPTFLEET_STOP_FILE"])
step_s = float(os.environ.get("EVAL_STEP_S", "0.05"))


def record(**fields: object) -> None:
    if log_path:
        with open(log_path, "a") as handle:
            handle.write(json.dumps({"suggestion_id": sid, "pid": os.getpid(), **fields}) + "\n")


def on_sigterm(signum: int, frame: object) -> None:
    record(event="sigterm", stop_file=stop_file.exists())
    sys.exit(143)


def append(line: str) -> None:
    with open(progress_file, "a") as handle:
        handle.write(line + "\n")


def write_step(step: int, item: object) -> None:
    key = "values" if isinstance(item, list) else "value"
    append(json.dumps({"step": step, key: item, "metadata": {"epoch": step}}))
    # Atomically: a crashed agent's evaluation may be killed at any point.
    partial = checkpoint.with_name("last_step.tmp")
    partial.write_text(str(step))
    os.replace(partial, checkpoint)


def wait_for_stop(seconds: float) -> None:
    """The evaluation's own pacing: one "epoch", cut short once the agent says stop."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop_file.exists():
        time.sleep(0.01)


signal.signal(signal.SIGTERM, on_sigterm)
done = int(checkpoint.read_text()) if checkpoint.exists() else 0
record(event="start", resumed_after_step=done, stop_file=stop_file.exists())
curve = json.loads(os.environ.get("EVAL_CURVE", "[0.5]"))
steps = json.loads(os.environ.get("EVAL_STEPS", "null")) or list(range(1, len(curve) + 1))

if mode == "raw":
    for text in json.loads(os.environ["EVAL_LINES"]):
        append(text)
    result_file.write_text(json.dumps({"value": float(os.environ.get("EVAL_RESULT", "0"))}))
    sys.exit(0)

result_at = int(os.environ.get("EVAL_RESULT_AT", "0"))
for step, item in zip(steps, curve):
    if step <= done:
        continue
    if mode == "result_then_stop" and step == result_at + 1:
        result_file.write_text(json.dumps({"value": -1.0}))
    write_step(step, item)
    if mode == "finish":
        time.sleep(step_s)
    else:
        wait_for_stop(step_s)

if mode == "finish":
    last = curve[-1]
    body = {"values": last} if isinstance(last, list) else {"value": last}
    result_file.write_text(json.dumps(body))
    sys.exit(0)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    time.sleep(0.05)
record(event="never_stopped")
result_file.write_text(json.dumps({"value": 99.0}))
