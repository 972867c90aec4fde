"""The twin's evaluation: counts steps in its checkpoint directory and holds until released.

It holds (one step every 0.2 s) until the file /var/lib/optfleet-twin/release-<suggestion id>
exists, which the test writes from outside the twin: that is how a test reboots or cuts the power
*during* an evaluation without racing it. The step count lives in the checkpoint, so a resumed
evaluation continues counting where the previous boot left off and reports how far it had got.
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
release = pathlib.Path("/var/lib/optfleet-twin") / f"release-{os.environ['OPTFLEET_SUGGESTION_ID']}"
deadline = time.monotonic() + 900  # never hold forever
steps = found
while True:
    steps += 1
    partial = steps_file.with_name("steps.partial")
    partial.write_text(str(steps))
    os.replace(partial, steps_file)
    if release.exists():
        break
    if time.monotonic() > deadline:
        sys.exit("never released")
    time.sleep(0.2)

assignments = json.loads(os.environ["OPTFLEET_ASSIGNMENTS"])
value = -sum((float(v) - 0.5) ** 2 for v in assignments.values())
result = {"value": value, "metadata": {"steps": steps, "checkpoint_steps_found": found}}
pathlib.Path(os.environ["OPTFLEET_RESULT_FILE"]).write_text(json.dumps(result))
