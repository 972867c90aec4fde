"""Run every benchmark script in benchmarks/ in turn (what ``make bench`` calls).

Each ``bench_*.py`` runs as its own process (``python -m benchmarks.<name>``), so one script's
servers, clusters and imports never disturb the next; each rewrites its own section of
docs/benchmarks.md. A script that cannot run on this machine (a missing optional dependency, no
root, no PostgreSQL) leaves its section as it was and is reported as unavailable. A failing script
is reported and the others still run; the exit status is 1 if any failed.

    .venv/bin/python -m benchmarks.run_all [--only NAME ...] [--skip NAME ...] [--list]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._report import UNAVAILABLE

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# Generous per-script bound: the slowest (cdk synth, the 1,000-worker run) take minutes.
SCRIPT_TIMEOUT_S = 3600
# Scripts that write more than one section: the extra invocations after the default one.
EXTRA_RUNS: dict[str, list[list[str]]] = {
    "bench_load": [
        [
            "--eval-s",
            "8,12",
            "--section",
            "load-pace",
            "--title",
            "1,000 workers at a fleet's pace (8-12 s evaluations)",
        ],
        [
            "--eval-s",
            "6,10",
            "--start-spread-s",
            "10",
            "--duration",
            "90",
            "--section",
            "load-fleet",
            "--title",
            "The 1,000-worker fleet run (6-10 s evaluations, instances starting over 10 s)",
        ],
    ],
    "bench_quality": [
        [
            "--methods",
            "random,saturated_padding,saturated_batch",
            "--problems",
            "branin,hartmann3,hartmann6,rosenbrock4,ackley5,styblinski_tang8,mixed5",
            "--workers",
            "64",
            "--budget",
            "320",
            "--seeds",
            "20",
            "--section",
            "quality-saturated",
            "--title",
            "Optimizer quality when the engine cannot keep up (64 workers, 1 in 16 proposed)",
        ],
    ],
}


def benchmark_names() -> list[str]:
    """Module names of the benchmark scripts, sorted (``bench_agent``, ``bench_demo``, ...)."""
    return sorted(path.stem for path in HERE.glob("bench_*.py"))


def run_one(name: str) -> tuple[int, int, float]:
    """Run one script (and its ``EXTRA_RUNS``); returns (worst exit status of those that failed,
    how many could not run here, seconds)."""
    started = time.monotonic()
    status = unavailable = 0
    for extra in [[], *EXTRA_RUNS.get(name, [])]:
        print(f"== {name} {' '.join(extra)} (load average {os.getloadavg()[0]:.1f})", flush=True)
        try:
            completed = subprocess.run(
                [sys.executable, "-m", f"benchmarks.{name}", *extra],
                cwd=REPO,
                timeout=SCRIPT_TIMEOUT_S,
            )
            if completed.returncode == UNAVAILABLE:
                unavailable += 1
            else:
                status = max(status, completed.returncode)
        except subprocess.TimeoutExpired:
            print(f"== {name}: timed out after {SCRIPT_TIMEOUT_S} s", flush=True)
            status = 124
    return status, unavailable, time.monotonic() - started


def outcome(status: int, unavailable: int) -> str:
    """What the summary says of one script."""
    if status:
        return f"FAILED ({status})"
    return f"ok, {unavailable} unavailable (section kept)" if unavailable else "ok"


def main(argv: list[str] | None = None) -> int:
    """Run the selected scripts in turn; print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, metavar="NAME", help="run only these")
    parser.add_argument("--skip", nargs="*", default=[], metavar="NAME", help="leave these out")
    parser.add_argument("--list", action="store_true", help="list the scripts and exit")
    args = parser.parse_args(argv)
    names = benchmark_names()
    if args.list:
        print("\n".join(names))
        return 0
    wanted = set(args.only) if args.only is not None else set(names)
    unknown = (wanted | set(args.skip)) - set(names)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}: expected some of {names}")
    selected = [name for name in names if name in wanted and name not in args.skip]
    results = [(name, *run_one(name)) for name in selected]
    print("\n== summary")
    for name, status, unavailable, seconds in results:
        print(f"{name:20s} {outcome(status, unavailable):34s} {seconds:7.0f} s")
    return 0 if all(status == 0 for _, status, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
