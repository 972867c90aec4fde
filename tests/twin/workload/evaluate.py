"""The twin's evaluation: counts steps in its checkpoint directory and holds until released.

It holds (one step every 0.2 s) until the file /var/lib/optfleet-twin/release-<suggestion id>
exists, which the test writes from outside the twin: that is how a test reboots or cuts the power
*during* an evaluation without racing it. The step count lives in the checkpoint, so a resumed
evaluation continues counting where the previous boot left off and reports how far it had got.
Once /var/lib/optfleet-twin/plateau-<suggestion id> exists it also reports a flat learning curve
(one progress line a step), which the experiment's convergence criterion stops: the server's
stop, not a release, then ends the evaluation.
"""

import json
import os
import pathlib
import sys
import time

checkpoint = pathlib.Path(os.environ["OPTFLEET_CHECKPOINT_DIR"])
checkpoint.mkdir(parents=True, exist_ok=True)
steps_file = checkpoint / "steps"
found = int(steps_file.read_text()) if steps_file.exists() else 0
held = pathlib.Path("/var/lib/optfleet-twin")
release = held / f"release-{os.environ['OPTFLEET_SUGGESTION_ID']}"
plateau = held / f"plateau-{os.environ['OPTFLEET_SUGGESTION_ID']}"
progress = pathlib.Path(os.environ["OPTFLEET_PROGRESS_FILE"])
reported = len(progress.read_text().splitlines()) if progress.exists() else 0
deadline = time.monotonic() + 900  # never hold forever
steps = found
while True:
    steps += 1
    partial = steps_file.with_name("steps.partial")
    partial.write_text(str(steps))
    os.replace(partial, steps_file)
    if plateau.exists():
        reported += 1
        with progress.open("a") as lines:
            lines.write(json.dumps({"step": reported, "value": 0.5}) + "\n")
    if release.exists():
        break
    if time.monotonic() > deadline:
        sys.exit("never released")
    time.sleep(0.2)

assignments = json.loads(os.environ["OPTFLEET_ASSIGNMENTS"])
value = -sum((float(v) - 0.5) ** 2 for v in assignments.values())
result = {"value": value, "metadata": {"steps": steps, "checkpoint_steps_found": found}}
pathlib.Path(os.environ["OPTFLEET_RESULT_FILE"]).write_text(json.dumps(result))
