"""Learning-curve benchmark: early stopping on a simulated fleet, at equal instance-seconds.

16 asynchronous workers on a simulated clock train configurations epoch by epoch (lc_fleet.py)
on real scikit-learn training and mf-prior-bench's MF-Hartmann (lc_problems.py); optfleet's
engine with no stopping, the server's ASHA and its median rule, against Optuna's TPE with no
pruner, HyperbandPruner and MedianPruner. The budget is the instance-seconds of ``--full-runs``
full-length runs per worker (default ``FULL_RUNS``). Writes section ``learning-curves`` of
docs/benchmarks.md; ``--json`` saves every run (``.gz``: compressed), ``--report-only`` writes
the section again from such a file (refusing runs of several commits unless
``--allow-mixed-commits``).

    .venv/bin/python -m benchmarks.bench_learning_curves --json "$RUNS"  # 10 seeds, one process
    .venv/bin/python -m benchmarks.bench_learning_curves --report-only "$RUNS"

with ``RUNS=benchmarks/data/learning-curves-runs.jsonl.gz``.
    .venv/bin/python -m benchmarks.bench_learning_curves --quick --no-write
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

from benchmarks._provenance import current_commit
from benchmarks._report import REPORT, machine_description, write_section
from benchmarks.lc_fleet import ALL_METHODS, METHODS, LCRun, run_fleet
from benchmarks.lc_problems import ALL_PROBLEMS, PROBLEMS
from benchmarks.lc_report import (
    FRACTION_LABELS,
    comparisons,
    curves_table,
    targets_table,
)

SECTION = "learning-curves"
# The budget, a protocol choice (not tuned on these problems): 9 full-length runs' worth of
# instance-seconds per worker. A fleet runs many configurations per instance; at 1/3 of this
# budget (the target share) a run without stopping has finished 3 full-length runs per
# worker (48 configurations with 16 workers), so the target can be met or missed; with 3 full
# runs per worker the first full-length run of any method ended near 1/3 and it could not.
# 9 = 3^2 also puts the 1/9 and 1/3 read-outs at one and three full runs per worker.
FULL_RUNS = 9.0
PACKAGES = ("optuna", "numpy", "scipy", "scikit-learn")


def budget_of(problem: str, workers: int, full_runs: float) -> float:
    """Instance-seconds of ``full_runs`` full-length runs per worker."""
    p = ALL_PROBLEMS[problem]
    return workers * full_runs * p.max_epochs * p.nominal_epoch_seconds


def _one(job: tuple[str, str, int, int, float]) -> LCRun:
    problem, method, seed, workers, budget = job
    return run_fleet(ALL_PROBLEMS[problem], method, seed, workers=workers, budget=budget)


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
        for s in seeds  # seed by seed: an interrupted run has every problem at its seeds
        for p in problems
        for m in methods
    ]
    runs: list[LCRun] = []
    # The code this invocation imported: HEAD when it started (others may commit meanwhile).
    commit = current_commit().label
    with contextlib.ExitStack() as stack:
        out = None
        if json_path is not None:
            opened = gzip.open if json_path.suffix == ".gz" else open
            out = stack.enter_context(opened(json_path, "at"))
        if jobs > 1:
            with ProcessPoolExecutor(jobs) as pool:
                for run in pool.map(_one, work):
                    runs.append(run)
                    _saved(run, out, commit)
        else:
            for job in work:
                runs.append(_one(job))
                _saved(runs[-1], out, commit)
    return runs


def _lines(path: Path) -> list[str]:
    """The lines of a --json file, gzip-compressed when its name ends in ``.gz``."""
    if path.suffix != ".gz":
        return path.read_text().splitlines()
    lines = []
    # An invocation still writing (or killed): the lines it flushed.
    with gzip.open(path, "rt") as f, contextlib.suppress(EOFError):
        for line in f:
            lines.append(line.rstrip("\n"))
    return [line for line in lines if line.endswith("}")]


def load_runs(path: Path) -> list[LCRun]:
    """The runs a --json file holds (``.gz``: compressed)."""
    runs = []
    for line in _lines(path):
        data = json.loads(line)
        data.pop("commit", None)
        data["finals"] = [tuple(pair) for pair in data["finals"]]
        runs.append(LCRun(**data))
    return runs


def _commits(path: Path) -> set[str]:
    return {json.loads(line).get("commit", "not recorded") for line in _lines(path)}


def _saved(run: LCRun, out: object, commit: str) -> None:
    print(
        f"{run.problem} {run.method} seed {run.seed}: best {run.best_at(run.budget):.5g}, "
        f"{run.trials} trials ({len(run.finals)} full), {run.cpu_seconds:.1f} CPU s",
        file=sys.stderr,
        flush=True,
    )
    if out is not None:
        line = {**asdict(run), "commit": commit}
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
    first = getattr(args, "first_seed", 0)
    lines = [
        "## Learning curves: early stopping on a simulated fleet (issue 21)",
        "",
        machine_description(PACKAGES),
        f"- Protocol: {args.workers} asynchronous workers on a simulated clock; each asks, "
        "trains epoch by epoch (an epoch costs the problem's simulated seconds times a jitter "
        "in 0.9-1.1 drawn from the seed), reports each epoch to the method's stopping rule, "
        "stops or goes on, tells. Every instance is busy all the time: instance-seconds = "
        f"workers x clock. Budget: {args.full_runs:g} full-length runs (27 epochs) per worker "
        "at the nominal epoch cost, a protocol choice (not tuned on these problems): at 1/3 of "
        f"it a run without stopping has finished {args.full_runs / 3:g} full-length runs per "
        "worker, so the target below can be met or missed; curves are read at fractions of it. "
        "Only values after the last epoch count as found. Seeds "
        f"{first}-{first + args.seeds - 1}; all values are minimized.",
        "- Methods: optfleet's engine in-process (`quality_methods.optfleet_suggester`) with no "
        "stopping, the server's ASHA and its median rule (the domain functions the checkpoint "
        "service calls, with the server's defaults: rungs 1, 3, 9, 27, reduction factor 3, "
        "median after 5 runs; stopped runs observed with `stopped_at_step`); Optuna's TPE "
        "(multivariate, constant liar) with no pruner, `HyperbandPruner(min_resource=1, "
        "max_resource=27, reduction_factor=3)` and `MedianPruner()` (defaults).",
        "- Problems (benchmarks/lc_problems.py): "
        + "; ".join(ALL_PROBLEMS[p].title for p in problems)
        + ". MF-Hartmann after mf-prior-bench (Mallik et al., PriorBand, NeurIPS 2023), its "
        "formula implemented here; epoch e of 27 is fidelity z = 100 e / 27.",
        f"- Wall time of the invocation: {seconds:.0f} s; CPU s per method (sum over runs): "
        + ", ".join(f"{ALL_METHODS[m][0]} {cpu[m]:.0f}" for m in methods),
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
    parser.add_argument("--seeds", type=int, default=10, help="how many seeds")
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="seeds --first-seed onwards (several invocations of one commit side by side)",
    )
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument(
        "--full-runs",
        type=float,
        default=FULL_RUNS,
        help="budget: instance-seconds of this many full-length runs per worker",
    )
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--json", type=Path, help="append one line per finished run")
    parser.add_argument(
        "--report-only",
        type=Path,
        help="report the runs saved with --json (same options) instead of running",
    )
    parser.add_argument(
        "--allow-mixed-commits",
        action="store_true",
        help="with --report-only: report runs of several commits (the section lists them all)",
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
    unknown = [p for p in problems if p not in ALL_PROBLEMS]
    unknown += [m for m in methods if m not in ALL_METHODS]
    if unknown:
        parser.error(f"unknown problems or methods: {', '.join(unknown)}")
    started = time.perf_counter()
    if args.report_only:
        saved = load_runs(args.report_only)
        runs = [r for r in saved if r.problem in problems and r.method in methods]
        commits = sorted(_commits(args.report_only))
        if len(commits) > 1 and not args.allow_mixed_commits:
            print(
                f"{args.report_only} holds runs of {len(commits)} commits ({', '.join(commits)}); "
                "run again from one commit, or pass --allow-mixed-commits",
                file=sys.stderr,
            )
            return 2
        # Only seeds with every (problem, method) run: an interrupted invocation leaves a seed
        # part-done.
        pairs = {(p, m) for p in problems for m in methods}
        done: dict[int, set[tuple[str, str]]] = {}
        for r in runs:
            done.setdefault(r.seed, set()).add((r.problem, r.method))
        seeds = sorted(seed for seed, have in done.items() if pairs <= have)
        runs = [r for r in runs if r.seed in seeds]
        args.seeds = len(seeds)
        body = report(runs, problems, methods, args, sum(r.cpu_seconds for r in runs))
        body = body.replace(
            "- Wall time of the invocation:",
            f"- Runs: {len(runs)} (seeds {', '.join(map(str, seeds))}) read from "
            f"`{args.report_only}`, written with `--json` by earlier invocations of commit "
            f"{', '.join(commits) or 'not recorded in the file'}; wall time: CPU seconds "
            "summed over its runs:",
        )
        print(body)
        if not args.no_write:
            write_section(SECTION, body, report=args.out)
        return 0
    runs = run_all(
        problems,
        methods,
        range(args.first_seed, args.first_seed + args.seeds),
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
