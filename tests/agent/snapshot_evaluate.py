"""A training loop that checkpoints, used by the snapshot tests: it continues from the step in
OPTFLEET_CHECKPOINT_DIR/state.json, saves each step there and marks it OPTFLEET_CHECKPOINT_SAVED.

EVAL_STEPS (10) steps of EVAL_STEP_S (0.02) simulated work; at each step of EVAL_HOLD_AT (e.g.
"1,6") it waits for the file ``<EVAL_RELEASE>-<step>`` (up to 120 s); EVAL_PAD_BYTES adds a file
of that size to the checkpoint. SIGTERM saves the current step, marks it and exits 143. Every
start, hold, SIGTERM and end appends a JSON line to EVAL_LOG. The result is the last step, with
``started_from`` in its metadata.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

checkpoint = Path(os.environ["OPTFLEET_CHECKPOINT_DIR"])
marker = Path(os.environ["OPTFLEET_CHECKPOINT_SAVED"])
state = checkpoint / "state.json"
steps = int(os.environ.get("EVAL_STEPS", "10"))
holds = {int(n) for n in os.environ.get("EVAL_HOLD_AT", "").split(",") if n}
step_s = float(os.environ.get("EVAL_STEP_S", "0.02"))
pad = int(os.environ.get("EVAL_PAD_BYTES", "0"))


def record(**fields: object) -> None:
    with open(os.environ["EVAL_LOG"], "a") as handle:
        handle.write(json.dumps({"suggestion_id": os.environ["OPTFLEET_SUGGESTION_ID"], **fields}))
        handle.write("\n")


def replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save(step: int) -> None:
    """A complete checkpoint first, then the mark saying so."""
    checkpoint.mkdir(parents=True, exist_ok=True)
    if pad:
        replace(checkpoint / "weights.bin", b"w" * pad)
    replace(state, json.dumps({"step": step}).encode())
    replace(marker, json.dumps({"step": step}).encode())


step = json.loads(state.read_text())["step"] if state.exists() else 0
started_from = step


def on_sigterm(signum: int, frame: object) -> None:
    save(step)
    record(event="sigterm", step=step)
    sys.exit(143)


signal.signal(signal.SIGTERM, on_sigterm)
record(
    event="start",
    started_from=step,
    resumed=os.environ["OPTFLEET_RESUMED"],
    attempt=os.environ["OPTFLEET_ATTEMPT"],
    instance_id=os.environ["OPTFLEET_INSTANCE_ID"],
)
while step < steps:
    if step in holds:
        record(event="holding", step=step)
        release = Path(f"{os.environ.get('EVAL_RELEASE', '/nonexistent')}-{step}")
        deadline = time.monotonic() + 120
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    time.sleep(step_s)  # the simulated work of one step
    step += 1
    save(step)
result = {"value": float(step), "metadata": {"started_from": started_from}}
Path(os.environ["OPTFLEET_RESULT_FILE"]).write_text(json.dumps(result))
record(event="done", step=step)
