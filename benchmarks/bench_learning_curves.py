"""Learning-curve benchmark: early stopping on a simulated fleet, at equal instance-seconds.

16 asynchronous workers on a simulated clock train configurations epoch by epoch (lc_fleet.py)
on real scikit-learn training and mf-prior-bench's MF-Hartmann (lc_problems.py); optfleet's
engine with no stopping, the server's ASHA and its median rule, against Optuna's TPE with no
pruner, HyperbandPruner and MedianPruner. The budget is the instance-seconds of ``--full-runs``
full-length runs per worker. Writes section ``learning-curves`` of docs/benchmarks.md.

    .venv/bin/python -m benchmarks.bench_learning_curves            # 10 seeds, one process
    .venv/bin/python -m benchmarks.bench_learning_curves --quick --no-write
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

from benchmarks._provenance import current_commit
from benchmarks._report import REPORT, machine_description, write_section
from benchmarks.lc_fleet import METHODS, LCRun, run_fleet
from benchmarks.lc_problems import PROBLEMS
from benchmarks.lc_report import (
    FRACTION_LABELS,
    comparisons,
    curves_table,
    targets_table,
)

SECTION = "learning-curves"
PACKAGES = ("optuna", "numpy", "scipy", "scikit-learn")


def budget_of(problem: str, workers: int, full_runs: float) -> float:
    """Instance-seconds of ``full_runs`` full-length runs per worker."""
    p = PROBLEMS[problem]
    return workers * full_runs * p.max_epochs * p.nominal_epoch_seconds


def _one(job: tuple[str, str, int, int, float]) -> LCRun:
    problem, method, seed, workers, budget = job
    return run_fleet(PROBLEMS[problem], method, seed, workers=workers, budget=budget)


def run_all(
    problems: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int],
    *,
    workers: int,
    full_runs: float,
    jobs: int = 1,
    json_path: Path | None = None,
) -> list[LCRun]:
    """Every (problem, method, seed) run, in-process with ``jobs`` = 1."""
    work = [
        (p, m, s, workers, budget_of(p, workers, full_runs))
        for p in problems
        for s in seeds
        for m in methods
    ]
    runs: list[LCRun] = []
    out = json_path.open("a") if json_path else None
    try:
        if jobs > 1:
            with ProcessPoolExecutor(jobs) as pool:
                done = pool.map(_one, work)
                for run in done:
                    runs.append(run)
                    _saved(run, out)
        else:
            for job in work:
                runs.append(_one(job))
                _saved(runs[-1], out)
    finally:
        if out:
            out.close()
    return runs


def load_runs(path: Path) -> list[LCRun]:
    """The runs a --json file holds."""
    runs = []
    for line in path.read_text().splitlines():
        data = json.loads(line)
        data.pop("commit", None)
        data["finals"] = [tuple(pair) for pair in data["finals"]]
        runs.append(LCRun(**data))
    return runs


def _commits(path: Path) -> set[str]:
    return {
        json.loads(line)["commit"]
        for line in path.read_text().splitlines()
        if "commit" in json.loads(line)
    }


def _saved(run: LCRun, out: object) -> None:
    print(
        f"{run.problem} {run.method} seed {run.seed}: best {run.best_at(run.budget):.5g}, "
        f"{run.trials} trials ({len(run.finals)} full), {run.cpu_seconds:.1f} CPU s",
        file=sys.stderr,
        flush=True,
    )
    if out is not None:
        line = {**asdict(run), "commit": current_commit().label}
        out.write(json.dumps(line) + "\n")  # type: ignore[attr-defined]
        out.flush()  # type: ignore[attr-defined]


def report(
    runs: Sequence[LCRun],
    problems: Sequence[str],
    methods: Sequence[str],
    args: argparse.Namespace,
    seconds: float,
) -> str:
    targets, verdicts = targets_table(runs, problems, methods)
    cpu = {m: sum(r.cpu_seconds for r in runs if r.method == m) for m in methods}
    lines = [
        "## Learning curves: early stopping on a simulated fleet (issue 21)",
        "",
        machine_description(PACKAGES),
        f"- Protocol: {args.workers} asynchronous workers on a simulated clock; each asks, "
        "trains epoch by epoch (an epoch costs the problem's simulated seconds times a jitter "
        "in 0.9-1.1 drawn from the seed), reports each epoch to the method's stopping rule, "
        "stops or goes on, tells. Every instance is busy all the time: instance-seconds = "
        f"workers x clock. Budget: {args.full_runs:g} full-length runs (27 epochs) per worker "
        "at the nominal epoch cost; curves are read at fractions of it. Only values after the "
        "last epoch count as found. Seeds "
        f"0-{args.seeds - 1}; all values are minimized.",
        "- Methods: optfleet's engine in-process (`quality_methods.optfleet_suggester`) with no "
        "stopping, the server's ASHA and its median rule (the domain functions the checkpoint "
        "service calls, with the server's defaults: rungs 1, 3, 9, 27, reduction factor 3, "
        "median after 5 runs; stopped runs observed with `stopped_at_step`); Optuna's TPE "
        "(multivariate, constant liar) with no pruner, `HyperbandPruner(min_resource=1, "
        "max_resource=27, reduction_factor=3)` and `MedianPruner()` (defaults).",
        "- Problems (benchmarks/lc_problems.py): "
        + "; ".join(PROBLEMS[p].title for p in problems)
        + ". MF-Hartmann after mf-prior-bench (Mallik et al., PriorBand, NeurIPS 2023), its "
        "formula implemented here; epoch e of 27 is fidelity z = 100 e / 27.",
        f"- Wall time of the invocation: {seconds:.0f} s; CPU s per method (sum over runs): "
        + ", ".join(f"{METHODS[m][0]} {cpu[m]:.0f}" for m in methods),
        "",
        "Best final value found by the instance-seconds spent (fractions of the budget), "
        "median over seeds (interquartile range); `-` = no full-length run finished yet; "
        "trials and full runs: medians per run over the whole budget:",
        "",
        curves_table(runs, problems, methods),
        "",
        "Target: reach the no-stopping run's final best (same seed, within 1 %) with at most 1/3 "
        "of its instance-seconds:",
        "",
        targets,
        "",
        *(f"- {v}" for v in verdicts),
        "",
        "Early stopping against no stopping at equal instance-seconds, and against Optuna's "
        f"better pruner (lower median) at each fraction ({', '.join(FRACTION_LABELS)}):",
        "",
        *comparisons(runs, problems),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--full-runs", type=float, default=3.0)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--json", type=Path, help="append one line per finished run")
    parser.add_argument(
        "--report-only",
        type=Path,
        help="report the runs saved with --json (same options) instead of running",
    )
    parser.add_argument("--quick", action="store_true", help="2 seeds, 2 problems, 4 workers")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.workers, args.full_runs = 2, 4, 2.0
        args.problems = "mfh3_good,sgd_wine"
    problems = args.problems.split(",")
    methods = args.methods.split(",")
    unknown = [p for p in problems if p not in PROBLEMS] + [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown problems or methods: {', '.join(unknown)}")
    started = time.perf_counter()
    if args.report_only:
        saved = load_runs(args.report_only)
        runs = [r for r in saved if r.problem in problems and r.method in methods]
        body = report(runs, problems, methods, args, sum(r.cpu_seconds for r in runs))
        commits = sorted({c for c in _commits(args.report_only)})
        body = body.replace(
            "- Wall time of the invocation:",
            f"- Runs: {len(runs)} read from the --json file of an earlier invocation (commit "
            f"{', '.join(commits) or 'not recorded in the file'}); wall time: CPU seconds "
            "summed over its runs:",
        )
        print(body)
        if not args.no_write:
            write_section(SECTION, body, report=args.out)
        return 0
    runs = run_all(
        problems,
        methods,
        range(args.seeds),
        workers=args.workers,
        full_runs=args.full_runs,
        jobs=args.jobs,
        json_path=args.json,
    )
    body = report(runs, problems, methods, args, time.perf_counter() - started)
    print(body)
    if not args.no_write:
        write_section(SECTION, body, report=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
