"""Wall time of `optfleet demo` (full and --short) against running the same evaluations bare.

Baseline, in the same invocation: the example objective (examples/hartmann6.py) run directly,
the same number of evaluations with the same seconds per evaluation, ``workers`` processes at a
time, with no server, agent, metadata service or injected faults. The ratio shows what the whole
fleet machinery costs on this machine: server start-up, suggestion and observation round trips,
the reboot, the termination (lease expiry before adoption) and the spot hand-over.

Run: .venv/bin/python -m benchmarks.bench_demo [--modes short,full] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks._report import REPO, machine_description, markdown_table, write_section

SECTION = "demo"
OBJECTIVE = REPO / "examples" / "hartmann6.py"
# (workers, evaluations, seconds per evaluation, steps) as `optfleet demo` uses them.
MODES = {"short": (3, 12, 2.0, 8), "full": (4, 40, 3.0, 10)}


def run_bare(evaluations: int, workers: int, seconds: float, steps: int) -> float:
    """Run the objective ``evaluations`` times, ``workers`` at a time; return the wall time."""
    assignments = json.dumps({f"x{i}": 0.3 for i in range(1, 7)})

    def one(index: int) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                **os.environ,
                "OPTFLEET_SUGGESTION_ID": str(index),
                "OPTFLEET_ASSIGNMENTS": assignments,
                "OPTFLEET_RESULT_FILE": str(Path(tmp) / "result.json"),
                "OPTFLEET_CHECKPOINT_DIR": tmp,
                "HARTMANN6_SECONDS": str(seconds),
                "HARTMANN6_STEPS": str(steps),
            }
            subprocess.run([sys.executable, str(OBJECTIVE)], env=env, check=True, timeout=120)

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, range(evaluations)))
    return time.monotonic() - start


def run_demo(mode: str) -> tuple[float, dict[str, object]]:
    """Run `optfleet demo --json` (with --short for the short mode); wall time and summary."""
    command = [sys.executable, "-m", "optfleet.cli", "demo", "--json"]
    if mode == "short":
        command.append("--short")
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=400)
    wall = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="short,full", help="comma-separated: short, full")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    rows = []
    for mode in args.modes.split(","):
        workers, evaluations, seconds, steps = MODES[mode]
        baseline = run_bare(evaluations, workers, seconds, steps)
        wall, summary = run_demo(mode)
        rows.append(
            [
                f"`optfleet demo{' --short' if mode == 'short' else ''}`",
                workers,
                evaluations,
                f"{seconds:g}",
                f"{wall:.1f}",
                f"{summary['server_start_s']}",
                summary["observations"],
                summary["resumed"],
                summary["adopted"],
                summary["duplicates"],
                summary["open_left"],
                f"{baseline:.1f}",
                f"{wall / baseline:.2f}",
            ]
        )
        print(rows[-1], flush=True)
    body = "\n\n".join(
        [
            "## Demo wall time",
            machine_description(["optuna", "rich"]),
            "Baseline in the same invocation: the example objective run bare (no server, agents, "
            "metadata services or faults), the same evaluations `workers` at a time. The demo's "
            "wall time includes starting the server (Optuna import, migrations) and its three "
            "injected faults; adoption waits for a lease to lapse (6 s in the demo).",
            markdown_table(
                [
                    "command",
                    "workers",
                    "budget",
                    "s/eval",
                    "demo wall s",
                    "server start s",
                    "observations",
                    "resumed",
                    "adopted",
                    "duplicates",
                    "open left",
                    "bare wall s",
                    "ratio demo/bare",
                ],
                rows,
            ),
        ]
    )
    if not args.no_write:
        write_section(SECTION, body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
