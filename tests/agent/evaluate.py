"""Evaluation command used by the agent tests: behaviour chosen by EVAL_MODE.

Every start appends a JSON line to EVAL_LOG (suggestion id, checkpoint dir, resumed, attempt,
whether the API token leaked into the environment). Modes: ok, garbage, nan, invalid_json, exit1,
hang, fail, wait (until EVAL_RELEASE exists or SIGTERM), named (two named metrics).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

mode = os.environ.get("EVAL_MODE", "ok")
log_path = os.environ.get("EVAL_LOG")
sid = os.environ["OPTFLEET_SUGGESTION_ID"]
checkpoint = Path(os.environ["OPTFLEET_CHECKPOINT_DIR"])
result_file = Path(os.environ["OPTFLEET_RESULT_FILE"])


def record(**fields: object) -> None:
    if not log_path:
        return
    line = json.dumps({"suggestion_id": sid, "pid": os.getpid(), **fields})
    with open(log_path, "a") as handle:
        handle.write(line + "\n")


def on_sigterm(signum: int, frame: object) -> None:
    (checkpoint / "sigterm").write_text("checkpointed\n")
    record(event="sigterm")
    sys.exit(143)


signal.signal(signal.SIGTERM, on_sigterm)
had_checkpoint = sorted(p.name for p in checkpoint.iterdir()) if checkpoint.exists() else []
record(
    event="start",
    checkpoint_dir=str(checkpoint),
    resumed=os.environ["OPTFLEET_RESUMED"],
    attempt=os.environ["OPTFLEET_ATTEMPT"],
    instance_id=os.environ.get("OPTFLEET_INSTANCE_ID"),
    run_id=os.environ.get("OPTFLEET_RUN_ID"),
    token_visible="SIGOPT_API_TOKEN" in os.environ,
    had_checkpoint=had_checkpoint,
)
with open(checkpoint / "progress", "a") as handle:
    handle.write("started\n")
assignments = json.loads(os.environ["OPTFLEET_ASSIGNMENTS"])
value = -sum((float(v) - 0.3) ** 2 for v in assignments.values() if isinstance(v, (int, float)))

if mode == "ok":
    result_file.write_text(json.dumps({"value": value, "metadata": {"note": "fine"}}))
elif mode == "named":
    result_file.write_text(
        json.dumps({"values": [{"name": "a", "value": value}, {"name": "b", "value": 1.0}]})
    )
elif mode == "garbage":
    sys.stdout.buffer.write(b"\x00\xff not json {{{ \n" * 50)
    sys.stderr.write("some noise on stderr\n")
    result_file.write_text(json.dumps({"value": value}))
elif mode == "nan":
    result_file.write_text('{"value": NaN}')
elif mode == "invalid_json":
    result_file.write_text('{"value": 1.0')
elif mode == "exit1":
    sys.stderr.write("Traceback: something broke\nValueError: bad learning rate\n")
    sys.exit(1)
elif mode == "fail":
    result_file.write_text(json.dumps({"failed": True, "reason": "diverged"}))
elif mode == "hang":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # make the agent escalate to SIGKILL
    while True:
        time.sleep(1)
elif mode == "wait":
    release = Path(os.environ["EVAL_RELEASE"])
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    result_file.write_text(json.dumps({"value": value}))
record(event="done")
