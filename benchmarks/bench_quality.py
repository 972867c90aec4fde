"""Optimizer quality: simple regret of optfleet's engine against baselines, same invocation.

Protocol (see ``quality_fleet``): a simulated fleet of 8 asynchronous workers (random evaluation
durations, every finishing worker reports and asks again, at most 8 suggestions open), a budget
of 80 observations, 40 seeds (Hartmann-6 is bimodal for GP methods: with 10 seeds one seed
decides its median). Reported: median simple regret and its IQR over seeds at 1/4, 1/2 and all
of the budget, the normalized score 100 x (random - method) / random averaged over the
problems, and the mean rank per problem. Without a method's or problem's optional dependencies
(``make bench-quality-deps`` installs them) the section is left as it was and the script says
what is missing; with ``--no-write`` the rest runs and prints those cells as "not run (missing X)".

Run: .venv/bin/python -m benchmarks.bench_quality [--seeds 40] [--problems branin,svc]
     [--methods random,optfleet] [--http] [--budget 80] [--workers 8] [--jobs 2]
     [--out docs/benchmarks.md | --no-write] [--json runs.jsonl [--resume | --report-only]]
     [--allow-mixed-commits]

``--json`` appends each finished run as one JSON line with the commit it ran at, so an
interrupted benchmark keeps what it measured; with ``--resume`` the runs already in that file are
not run again but reported. Runs of different commits (or saved without one) are not merged
unless ``--allow-mixed-commits``, and the section says which commits its runs come from.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

from benchmarks._provenance import (
    NOT_RECORDED,
    MixedCommitsError,
    current_commit,
    describe_commits,
    merged_commits,
)
from benchmarks._report import (
    REPORT,
    keep_unavailable_section,
    machine_description,
    markdown_table,
    write_section,
)
from benchmarks.quality_fleet import DURATION_RANGE, run_fleet
from benchmarks.quality_http import serving
from benchmarks.quality_methods import METHODS, missing_packages
from benchmarks.quality_problems import PROBLEMS, svc_reference
from benchmarks.quality_report import (
    RunRecord,
    cells,
    checkpoint_table,
    optima,
    regret_table,
    summarize,
)

SECTION = "quality"
PACKAGES = ["optuna", "numpy", "scipy", "torch", "cmaes", "scikit-learn"]


def run_one(problem_name: str, method_name: str, seed: int, budget: int, workers: int) -> RunRecord:
    """One (problem, method, seed) run on the simulated fleet."""
    problem, method = PROBLEMS[problem_name], METHODS[method_name]
    fleet_workers = method.workers or workers
    run = run_fleet(problem, method.make(problem, seed), seed, budget, fleet_workers)
    return RunRecord(
        problem=problem_name,
        method=method_name,
        seed=seed,
        workers=fleet_workers,
        values=run.values,
        max_open=run.max_open,
        duplicate_open=run.duplicate_open,
        seconds=run.seconds,
        cpu_seconds=run.cpu_seconds,
    )


def _run_task(task: tuple[str, str, int, int, int]) -> RunRecord:
    return run_one(*task)


def missing_for(problem: str, method: str) -> list[str]:
    """The packages (pip names) that the problem or the method needs and that are missing."""
    return missing_packages(PROBLEMS[problem].needs) + missing_packages(METHODS[method].needs)


def not_run_reasons(problems: Sequence[str], methods: Sequence[str]) -> dict[tuple[str, str], str]:
    """(problem, method) → "not run (missing X)" for every pair whose dependencies are missing."""
    reasons: dict[tuple[str, str], str] = {}
    for p in problems:
        for m in methods:
            missing = missing_for(p, m)
            if missing:
                reasons[p, m] = f"not run (missing {', '.join(missing)})"
    return reasons


Task = tuple[str, str, int, int, int]  # problem, method, seed, budget, workers


def load_runs(path: Path) -> list[RunRecord]:
    """The runs saved in a ``--json`` file (one JSON object per line)."""
    if not path.exists():
        return []
    return [RunRecord(**json.loads(line)) for line in path.read_text().splitlines() if line]


def same_task(record: RunRecord, task: Task) -> bool:
    problem, method, seed, budget, workers = task
    return (record.problem, record.method, record.seed, len(record.values)) == (
        problem,
        method,
        seed,
        budget,
    ) and record.workers == (METHODS[method].workers or workers)


def run_all(
    tasks: list[Task], jobs: int, save: Path | None = None, commit: str = ""
) -> list[RunRecord]:
    """Run the tasks, ``jobs`` processes at a time (1 = in this process), saving each run
    with the ``commit`` it ran at."""
    records: list[RunRecord] = []
    started = time.monotonic()

    def done(record: RunRecord) -> None:
        record = replace(record, commit=commit)
        records.append(record)
        if save is not None:
            with save.open("a") as out:
                out.write(json.dumps(asdict(record)) + "\n")
        print(
            f"  [{time.monotonic() - started:6.0f} s] {len(records)}/{len(tasks)} "
            f"{record.problem} {record.method} seed={record.seed} "
            f"best={min(record.values):.4g} ({record.seconds:.1f} s)",
            flush=True,
        )

    if jobs <= 1:
        for task in tasks:
            done(_run_task(task))
    else:
        # One thread per process: torch (GPSampler) would otherwise start a thread per core in
        # every process. fork: children inherit the imports; the parent has not loaded torch.
        os.environ["OMP_NUM_THREADS"] = "1"
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            for record in pool.imap_unordered(_run_task, tasks):
                done(record)
    return records


def report(
    records: Sequence[RunRecord],
    problems: Sequence[str],
    methods: Sequence[str],
    not_run: dict[tuple[str, str], str],
    budget: int,
    workers: int,
    references: dict[str, float],
) -> str:
    """The markdown body of the section: regret tables, score, rank, time and protocol checks."""
    checkpoints = sorted({max(budget // 4, 1), max(budget // 2, 1), budget})
    optimum = optima(records, {p: PROBLEMS[p].optimum for p in problems}, references)
    table = cells(records, optimum, checkpoints)
    final = {(p, m): c.median for (p, m, n), c in table.items() if n == budget}
    summary = summarize(final, problems, methods)
    problem_labels = {p: PROBLEMS[p].label for p in problems}
    method_labels = {m: method_label(m, workers) for m in methods}
    seconds: dict[str, float] = defaultdict(float)
    cpu: dict[str, list[float]] = defaultdict(list)
    runs: dict[str, int] = defaultdict(int)
    for r in records:
        seconds[r.method] += r.seconds
        if r.cpu_seconds:
            cpu[r.method].append(r.cpu_seconds)
        runs[r.method] += 1
    summary_rows = []
    for m in methods:
        max_open = max((r.max_open for r in records if r.method == m), default=0)
        duplicates = sum(r.duplicate_open for r in records if r.method == m)
        seeds = len({r.seed for r in records if r.method == m})
        summary_rows.append(
            [
                method_labels[m],
                f"{summary.score[m]:.0f}" if m in summary.score else "-",
                f"{summary.rank[m]:.2f}" if m in summary.rank else "-",
                seeds,
                runs[m],
                f"{seconds[m]:.0f}",
                f"{seconds[m] / runs[m]:.1f}" if runs[m] else "-",
                f"{statistics.mean(cpu[m]):.1f}" if cpu[m] else "-",
                max_open,
                duplicates,
            ]
        )
    return "\n\n".join(
        [
            f"Median simple regret (best found - optimum) after {budget} observations over the "
            "seeds, interquartile range in parentheses:",
            regret_table(table, problem_labels, method_labels, not_run, budget),
            "Normalized score = 100 x (random - method) / random on the median regret at "
            f"{budget}, averaged over the problems (100 = optimum found, 0 = random search); "
            "rank among the methods per problem by median regret (ties share), averaged. "
            "Wall time is the runs' own time (optimizer and objective) summed over "
            "the runs of the method; the runs shared 2 cores with other work, so CPU time "
            "per run (one thread per process) is the figure to plan with.",
            markdown_table(
                [
                    "method",
                    "score",
                    "mean rank",
                    "seeds",
                    "runs",
                    "wall s (sum)",
                    "s per run",
                    "CPU s per run",
                    "max open",
                    "duplicates among open",
                ],
                summary_rows,
            ),
            "Median regret after each checkpoint:",
            checkpoint_table(table, problem_labels, method_labels, checkpoints),
        ]
    )


def method_label(method: str, workers: int) -> str:
    """E.g. "Optuna TPE, sequential (1 worker)"."""
    count = METHODS[method].workers or workers
    return f"{METHODS[method].label} ({count} worker{'s' if count != 1 else ''})"


def preamble(args: argparse.Namespace, methods: Sequence[str], references: dict[str, float]) -> str:
    """How the numbers were made: protocol, problems, methods."""
    lines = [
        machine_description(PACKAGES),
        f"- Protocol: {args.workers} asynchronous workers on a simulated clock (evaluation "
        f"durations uniform {DURATION_RANGE[0]}-{DURATION_RANGE[1]}, drawn from the seed; a "
        f"finishing worker reports and asks again; at most {args.workers} open), budget "
        f"{args.budget} observations, seeds 0-{args.seeds - 1}; sequential TPE runs with 1 "
        "worker. All problems are minimized.",
        "- optfleet: the server's engine (`suggestion_server.optimizer.suggester.StudySuggester`) "
        "driven in-process through the `Suggester` protocol over in-memory rows, as the "
        "server calls it. Baselines: Optuna 5 samplers on an in-memory study with ask/tell; "
        "open suggestions are RUNNING trials (TPE's constant liar, GPSampler's qLogEI over "
        "running trials). TPE uses the engine's settings (multivariate, constant liar).",
    ]
    if "optfleet_http" in methods:
        lines.append(
            "- optfleet server over HTTP: the same engine behind a real server (SQLite, "
            "loopback), each run its own experiment, driven through `POST /v1/experiments/"
            "{id}/suggestions` and `/observations`; the server has no seed setting, so these "
            "runs are not exactly repeatable."
        )
    if references:
        lines.append(
            "- The SVC task (standardized RBF SVC, log C in [1e-2, 1e3], log gamma in "
            "[1e-5, 1e1], 3-fold stratified CV error on sklearn's bundled breast_cancer) has "
            "no known optimum: regret is measured above the lower of a 25x25 log-grid "
            f"reference ({references['svc']:.4f}) and the best error any method found in the "
            "run. Errors move in steps of about 1/569."
        )
    return "\n".join(lines)


def _saved(saved: Sequence[RunRecord], task: Task) -> bool:
    return any(same_task(r, task) for r in saved)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--methods", default=",".join(m for m in METHODS if METHODS[m].default))
    parser.add_argument(
        "--http", action="store_true", help="also run optfleet through a real server (HTTP)"
    )
    parser.add_argument("--budget", type=int, default=80)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=REPORT, help="markdown report to update")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--section", default=SECTION, help="report section to write")
    parser.add_argument(
        "--title", default="Optimizer quality (regret on test problems, simulated parallel fleet)"
    )
    parser.add_argument("--json", type=Path, help="append each run here as a JSON line")
    parser.add_argument("--resume", action="store_true", help="reuse the runs in --json")
    parser.add_argument(
        "--report-only", action="store_true", help="report the runs in --json, run nothing"
    )
    parser.add_argument(
        "--allow-mixed-commits",
        action="store_true",
        help="merge runs recorded at different commits (or without one); the section lists them",
    )
    args = parser.parse_args(argv)
    problems = [p for p in args.problems.split(",") if p]
    methods = [m for m in args.methods.split(",") if m]
    if args.http and "optfleet_http" not in methods:
        methods.append("optfleet_http")
    unknown = [p for p in problems if p not in PROBLEMS] + [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown {unknown}: problems {list(PROBLEMS)}, methods {list(METHODS)}")

    started = time.monotonic()
    not_run = not_run_reasons(problems, methods)
    for (p, m), reason in sorted(not_run.items()):
        print(f"{p} / {m}: {reason}", flush=True)
    if not_run and not args.no_write:
        missing = sorted({pkg for p in problems for m in methods for pkg in missing_for(p, m)})
        return keep_unavailable_section(
            args.section,
            args.title,
            [f"{', '.join(missing)} (`make bench-quality-deps` installs them)"],
            report=args.out,
        )
    references = {}
    if "svc" in problems and not missing_packages(PROBLEMS["svc"].needs):
        print("SVC reference optimum (grid)…", flush=True)
        references["svc"] = svc_reference()
    # Slow methods last and seed by seed: a run stopped early (see --resume, --report-only)
    # has every fast method complete and whole seeds of the slow ones.
    tasks: list[Task] = sorted(
        (
            (p, m, seed, args.budget, args.workers)
            for seed in range(args.seeds)
            for m in methods
            for p in problems
            if (p, m) not in not_run
        ),
        key=lambda t: (METHODS[t[1]].slow, t[2]),
    )
    if args.report_only and not args.json:
        parser.error("--report-only needs --json")
    reuse = args.resume or args.report_only
    saved = load_runs(args.json) if args.json and reuse else []
    if args.json and not reuse:
        args.json.write_text("")
    reused = [next(r for r in saved if same_task(r, t)) for t in tasks if _saved(saved, t)]
    todo = [] if args.report_only else [t for t in tasks if not _saved(saved, t)]
    commit = current_commit().label
    merged = ""
    if reused:
        print(f"{len(reused)} runs taken from {args.json}, {len(todo)} to run", flush=True)
        runs = [(r.commit, str(args.json)) for r in reused]
        runs += [(commit, "this invocation")] * len(todo)
        try:
            tally = merged_commits(
                runs,
                allow_mixed=args.allow_mixed_commits,
                flag="--allow-mixed-commits",
                unit="runs",
            )
        except MixedCommitsError as error:
            raise SystemExit(f"bench_quality: {error}") from None
        mixed = len(tally) > 1 or NOT_RECORDED in tally
        merged = f"- Runs measured at: {describe_commits(tally, 'runs')}" + (
            " (merged with --allow-mixed-commits: not one known commit)" if mixed else ""
        )
    with serving() if "optfleet_http" in methods and todo else contextlib.nullcontext():
        records = reused + run_all(todo, args.jobs, save=args.json, commit=commit)
    records.sort(key=lambda r: (r.problem, r.method, r.seed))
    elapsed = time.monotonic() - started
    incomplete = [
        f"{METHODS[m].label} has {len(seeds)} of {args.seeds} seeds"
        for m in methods
        if (seeds := {r.seed for r in records if r.method == m}) and len(seeds) < args.seeds
    ]
    body = "\n\n".join(
        [
            f"## {args.title}",
            preamble(args, methods, references) + (f"\n{merged}" if merged else ""),
            report(records, problems, methods, not_run, args.budget, args.workers, references),
            (
                f"Total benchmark time: {elapsed:.0f} s with {args.jobs} processes."
                if not reused
                else f"{len(reused)} of the runs were saved by an earlier invocation "
                "(--resume/--report-only); the wall times above are each run's own."
            )
            + (
                f" Incomplete (runs not finished, reported with --report-only): "
                f"{'; '.join(incomplete)}."
                if incomplete
                else ""
            ),
        ]
    )
    print(body, flush=True)
    if not args.no_write:
        write_section(args.section, body, report=args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
