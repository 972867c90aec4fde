"""Broad optimizer benchmark: COCO's BBOB suite, noisy and mixed spaces, real tuning tasks.

Protocol (docs/benchmarks.md, "Broad benchmark"): simulated asynchronous fleets (8 and 64
workers), budgets 10 x d and 40 x d evaluations (one run to 40 x d, read at both), seeds
0..N-1 each on its own instance. Settings are chosen on the ``dev`` split and reported on the
``test`` split (``broad_problems``: other BBOB instances, other real tasks). Every run is saved
as its own JSON file (``--results DIR``), with the commit it ran at, so a long run can be done in
pieces: files already there are reused, never run again, and a report refuses files of another
commit unless ``--allow-mixed-commits``.

Run: .venv/bin/python -m benchmarks.bench_broad --split dev|test [--quick]
     [--groups bbob,noisy,mixed,real] [--dims 2,5,10,20] [--functions 1-24] [--problems a,b]
     [--methods random,optfleet,...] [--workers 8,64] [--factors 10,40] [--seeds 10]
     [--jobs 2] [--results DIR] [--report-only] [--no-write] [--section NAME]

``--quick``: a CI-sized check (a few 2-D problems, 2 seeds, budget 10 x d, 8 workers, the fast
methods). The full suite: ``make bench-broad``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
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
from benchmarks.broad_fleet import NEAR_FRACTION, run_broad_fleet
from benchmarks.broad_methods import Context, method, missing_packages
from benchmarks.broad_problems import PROBLEMS, BroadProblem, Split
from benchmarks.broad_report import (
    ECDF_POINTS,
    BroadRecord,
    Cell,
    cells,
    ecdf,
    first_or_tied,
    fmt,
    optima,
    paired,
    scales,
)

PACKAGES = ["optuna", "numpy", "scipy", "torch", "cmaes", "scikit-learn", "coco-experiment"]
ENGINE = "optfleet"
DEFAULT_METHODS = "random,optfleet,tpe_seq,tpe_cl,cmaes,gp,gp_fleet"
QUICK_PROBLEMS = "bbob_f1_d2,bbob_f21_d2,mixed_f1_d5,noisy_f107_d2"
RESULTS = Path("benchmarks/results/broad")


@dataclass(frozen=True)
class Task:
    """One run: a problem's instance (by seed) under one method and fleet."""

    split: Split
    problem: str
    method: str
    seed: int
    workers: int
    budget: int

    def path(self, root: Path) -> Path:
        return (
            root
            / self.split
            / self.problem
            / self.method.replace("@", "_at_")
            / f"w{self.workers}-b{self.budget}-s{self.seed}.json"
        )


def run_task(task: Task) -> BroadRecord:
    """Build the instance and the method in this process and run the fleet."""
    problem = PROBLEMS[task.problem]
    instance = problem.make(task.split, task.seed)
    context = Context(instance.parameters, task.seed, task.workers, problem.deterministic)
    optimizer = method(task.method).make(context)
    run = run_broad_fleet(
        instance.parameters, instance.evaluate, optimizer, task.seed, task.budget, task.workers
    )
    return BroadRecord(
        split=task.split,
        problem=task.problem,
        group=problem.group,
        dimension=problem.dimension,
        method=task.method,
        seed=task.seed,
        workers=task.workers,
        budget=task.budget,
        instance=instance.instance_id,
        values=run.values,
        true_values=run.true_values,
        optimum=instance.optimum,
        reference=instance.reference,
        near_duplicates=run.near_duplicates,
        exact_duplicates=run.exact_duplicates,
        asks=run.asks,
        max_open=run.max_open,
        seconds=run.seconds,
        cpu_seconds=run.cpu_seconds,
    )


_COMMIT = ""
_ROOT = RESULTS


def _run_and_save(task: Task) -> tuple[Task, float]:
    record = run_task(task)
    record.commit = _COMMIT
    path = task.path(_ROOT)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(asdict(record)))
    partial.rename(path)  # whole files only: an interrupted run leaves no half result
    return task, record.seconds


def load(path: Path) -> BroadRecord:
    """A saved run."""
    return BroadRecord(**json.loads(path.read_text()))


def parse_range(text: str) -> list[int]:
    """ "1-5,7" -> [1, 2, 3, 4, 5, 7]."""
    values: list[int] = []
    for part in text.split(","):
        if "-" in part:
            low, high = part.split("-")
            values += range(int(low), int(high) + 1)
        elif part:
            values.append(int(part))
    return values


def select_problems(args: argparse.Namespace) -> list[BroadProblem]:
    """The problems of the split that match the options."""
    if args.problems:
        names = [n for n in args.problems.split(",") if n]
        unknown = [n for n in names if n not in PROBLEMS]
        if unknown:
            raise SystemExit(f"unknown problems {unknown}")
        return [PROBLEMS[n] for n in names if args.split in PROBLEMS[n].splits]
    groups = set(args.groups.split(","))
    dims = set(parse_range(args.dims))
    functions = set(parse_range(args.functions))
    chosen = []
    for p in PROBLEMS.values():
        if p.group not in groups or args.split not in p.splits:
            continue
        if p.group not in ("real", "quality") and p.dimension not in dims:
            continue
        if p.group == "bbob" and int(p.name.split("_f")[1].split("_")[0]) not in functions:
            continue
        chosen.append(p)
    return chosen


def tasks_for(args: argparse.Namespace, problems: Sequence[BroadProblem]) -> list[Task]:
    """Every run the options ask for; sequential methods once, with one worker."""
    factors = parse_range(args.factors)
    tasks: dict[Task, None] = {}
    methods = [m for m in args.methods.split(",") if m]
    for workers in parse_range(args.workers):
        for p in problems:
            budget = args.budget or max(factors) * p.dimension
            if args.max_budget:
                budget = min(budget, args.max_budget)
            for m in methods:
                for seed in range(args.seeds):
                    w = 1 if method(m).sequential else workers
                    tasks[Task(args.split, p.name, m, seed, w, budget)] = None
    # Slow methods last, seed by seed: an interrupted run has whole seeds of everything fast.
    return sorted(tasks, key=lambda t: (method(t.method).slow, t.seed, t.workers, t.problem))


def execute(todo: Sequence[Task], jobs: int, root: Path, commit: str) -> None:
    """Run ``todo``, ``jobs`` processes at a time, each run saved as it finishes."""
    global _COMMIT, _ROOT
    _COMMIT, _ROOT = commit, root
    # The engine imported before forking: a worker started later must not read files that
    # were edited meanwhile (a run measures one version of the code).
    from suggestion_server.optimizer import suggester  # noqa: F401
    from suggestion_server.optimizer.gp import proposer  # noqa: F401

    started = time.monotonic()
    if jobs <= 1:
        finished = map(_run_and_save, todo)
    else:
        os.environ["OMP_NUM_THREADS"] = "1"  # torch: one thread per process
        pool = multiprocessing.get_context("fork").Pool(jobs, maxtasksperchild=50)
        finished = pool.imap_unordered(_run_and_save, todo)
    for done, (task, seconds) in enumerate(finished, 1):
        print(
            f"  [{time.monotonic() - started:6.0f} s] {done}/{len(todo)} {task.problem} "
            f"{task.method} w{task.workers} seed={task.seed} ({seconds:.1f} s)",
            flush=True,
        )


def report(
    records: Sequence[BroadRecord],
    problems: Sequence[BroadProblem],
    methods: Sequence[str],
    workers: Sequence[int],
    factors: Sequence[int],
    budget: int = 0,
) -> tuple[str, dict[str, object]]:
    """The section's body, and the figures the targets are checked on; ``budget`` (a fixed
    budget for every problem) reads the runs after a quarter of it and at its end instead."""
    optimum = optima(records)
    checkpoints = {f"{f}d": f for f in factors}
    if budget:
        checkpoints = {f"@{n}": n for n in (budget // 4, budget)}
    table = cells(records, optimum, checkpoints, absolute=bool(budget))
    baselines = [m for m in methods if m != ENGINE]

    def fleet(m: str, w: int) -> int:
        return 1 if method(m).sequential else w

    def cell(p: str, m: str, w: int, c: str) -> Cell | None:
        return table.get((p, m, fleet(m, w), c))

    parts: list[str] = []
    checks: dict[str, object] = {}
    for w in workers:
        for name in checkpoints:
            rows = []
            wtl = {b: Counter[str]() for b in baselines}
            first = 0
            counted = 0
            worse_than_random: list[str] = []
            behind: list[str] = []
            for p in problems:
                mine = cell(p.name, ENGINE, w, name)
                if mine is None:
                    continue
                present = {m: cell(p.name, m, w, name) for m in methods}
                present = {m: c for m, c in present.items() if c is not None}
                # Sequential methods' cells are stored under workers 1: one table for first.
                keyed = {(p.name, m, w, name): c for m, c in present.items()}
                ok, best = first_or_tied(keyed, p.name, w, name, ENGINE, list(present))
                counted += 1
                first += ok
                row = [p.label]
                for m in methods:
                    c = present.get(m)
                    row.append("-" if c is None else f"{fmt(c.median)} ({fmt(c.q25)}-{fmt(c.q75)})")
                marks = []
                for b in baselines:
                    if b in present:
                        outcome, _ = paired(mine, present[b])
                        wtl[b][outcome] += 1
                        marks.append(outcome[0].upper())
                    else:
                        marks.append("-")
                row.append("".join(marks))
                row.append("yes" if ok else f"no ({method(best).label})")
                rows.append(row)
                if "random" in present and mine.median > present["random"].median:
                    worse_than_random.append(p.label)
                others = [present[b].median for b in baselines if b in present]
                if others and mine.median > 1.1 * min(others) and mine.median > 1e-8:
                    behind.append(p.label)
            if not rows:
                continue
            share = first / counted if counted else 0.0
            checks[f"w{w}-{name}"] = {
                "first_or_tied": share,
                "worse_than_random": worse_than_random,
                "behind_10pct": len(behind),
                "problems": counted,
            }
            header = ["problem", *(method(m).label for m in methods)]
            header += ["engine vs " + "/".join(b for b in baselines), "first or tied"]
            parts += [
                f"### {w} workers, budget {name.replace('d', ' x d').replace('@', '')}",
                f"Median regret (IQR) over the seeds; W/T/L = engine's paired Wilcoxon "
                f"outcome against each baseline in the order {', '.join(baselines)}.",
                markdown_table(header, rows),
                markdown_table(
                    ["baseline", "wins", "ties", "losses"],
                    [[method(b).label, c["win"], c["tie"], c["loss"]] for b, c in wtl.items()],
                ),
                f"Engine first or statistically tied for first: {first}/{counted} "
                f"({100 * share:.0f} %). Median worse than random search: "
                f"{', '.join(worse_than_random) or 'none'}. More than 10 % behind the best "
                f"baseline's median: {len(behind)}/{counted}"
                + (f" ({', '.join(behind)})" if behind else "")
                + ".",
            ]
    # Near-duplicates and the ECDF, per method and fleet.
    near_rows = []
    for m in methods:
        for w in sorted({fleet(m, w) for w in workers}):
            runs = [r for r in records if r.method == m and r.workers == w]
            if not runs:
                continue
            asks = sum(r.asks for r in runs)
            near = sum(r.near_duplicates for r in runs)
            worst = max(r.near_duplicates / r.asks for r in runs if r.asks)
            near_rows.append(
                [
                    method(m).label,
                    w,
                    len(runs),
                    f"{100 * near / asks:.2f} %",
                    f"{100 * worst:.1f} %",
                    sum(r.exact_duplicates for r in runs),
                    f"{statistics.mean(r.cpu_seconds for r in runs):.1f}",
                ]
            )
            if m == ENGINE:
                checks[f"near_duplicates_w{w}"] = near / asks
    parts += [
        "### Near-duplicates and cost",
        f"A near-duplicate is a suggestion within {100 * NEAR_FRACTION:g} % of the range in "
        "every numeric parameter (log-scaled ones in log space) and equal in the categorical "
        "ones of a suggestion another worker is still evaluating.",
        markdown_table(
            [
                "method",
                "workers",
                "runs",
                "near-duplicates (all asks)",
                "worst run",
                "exact duplicates",
                "CPU s per run",
            ],
            near_rows,
        ),
    ]
    curves = ecdf(records, optimum, scales(records, optimum))
    parts += [
        "### COCO-style aggregate",
        "Fraction of (run, target) pairs reached after k x d evaluations: bbob-based problems "
        "with COCO's 51 targets f - fopt in 10^[2, -8], real tasks with 21 targets "
        "10^[0, -4] x their median first-evaluation regret.",
        markdown_table(
            ["method", "workers", *(f"{k} x d" for k in ECDF_POINTS)],
            [
                [method(m).label, w, *("-" if v is None else f"{v:.2f}" for v in values)]
                for (m, w), values in sorted(curves.items(), key=lambda kv: (kv[0][1], kv[0][0]))
            ],
        ),
    ]
    return "\n\n".join(parts), checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("dev", "test"), default="dev")
    parser.add_argument("--quick", action="store_true", help="a CI-sized check")
    parser.add_argument(
        "--groups", default="bbob,noisy,mixed,real", help="and quality: bench_quality's problems"
    )
    parser.add_argument("--dims", default="2,5,10,20")
    parser.add_argument("--functions", default="1-24")
    parser.add_argument("--problems", default="")
    parser.add_argument("--methods", default=DEFAULT_METHODS)
    parser.add_argument("--workers", default="8,64")
    parser.add_argument("--factors", default="10,40", help="budgets, evaluations per dimension")
    parser.add_argument("--max-budget", type=int, default=0, help="cap on any run's budget")
    parser.add_argument("--budget", type=int, default=0, help="one budget for every problem")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--results", type=Path, default=RESULTS, help="one JSON file per run")
    parser.add_argument("--report-only", action="store_true", help="run nothing")
    parser.add_argument("--allow-mixed-commits", action="store_true")
    parser.add_argument("--out", type=Path, default=REPORT)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--section", default="")
    args = parser.parse_args(argv)
    if args.quick:
        args.problems = args.problems or QUICK_PROBLEMS
        args.methods = (
            "random,optfleet,tpe_seq" if args.methods == DEFAULT_METHODS else args.methods
        )
        args.seeds, args.factors, args.workers = min(args.seeds, 2), "10", "8"
    section = args.section or f"broad-{args.split}" + ("-quick" if args.quick else "")
    title = f"Broad benchmark, {args.split} split" + (" (quick)" if args.quick else "")
    problems = select_problems(args)
    methods = [m for m in args.methods.split(",") if m]
    needs = {n for p in problems for n in p.needs} | {n for m in methods for n in method(m).needs}
    missing = missing_packages(sorted(needs))
    if missing:
        if args.no_write:
            print(f"bench_broad: missing {', '.join(missing)} (make bench-quality-deps)")
            return 77
        return keep_unavailable_section(
            section, title, [f"{', '.join(missing)} (`make bench-quality-deps` installs them)"]
        )
    tasks = tasks_for(args, problems)
    commit = current_commit().label
    saved = [t for t in tasks if t.path(args.results).exists()]
    todo = [] if args.report_only else [t for t in tasks if not t.path(args.results).exists()]
    print(
        f"{len(tasks)} runs: {len(saved)} saved in {args.results}, {len(todo)} to run", flush=True
    )
    records = [load(t.path(args.results)) for t in saved]
    try:
        tally = merged_commits(
            [(r.commit, str(args.results)) for r in records]
            + [(commit, "this invocation")] * len(todo),
            allow_mixed=args.allow_mixed_commits,
            flag="--allow-mixed-commits",
            unit="runs",
        )
    except MixedCommitsError as error:
        raise SystemExit(f"bench_broad: {error}") from None
    started = time.monotonic()
    execute(todo, args.jobs, args.results, commit)
    records = [load(t.path(args.results)) for t in tasks if t.path(args.results).exists()]
    workers = parse_range(args.workers)
    body, checks = report(
        records, problems, methods, workers, parse_range(args.factors), args.budget
    )
    mixed = len(tally) > 1 or NOT_RECORDED in tally
    lines = [
        f"## {title}",
        machine_description(PACKAGES),
        f"- Runs measured at: {describe_commits(tally, 'runs')}"
        + (" (merged with --allow-mixed-commits)" if mixed else ""),
        f"- Split `{args.split}`: {len(problems)} problems, seeds 0-{args.seeds - 1} (one "
        f"instance each), fleets of {args.workers} workers, budgets "
        + (f"{args.budget}" if args.budget else f"{args.factors} x d")
        + f" evaluations{f' (capped at {args.max_budget})' if args.max_budget else ''}; "
        f"{len(records)} runs, {len(todo)} of them in this invocation "
        f"({time.monotonic() - started:.0f} s with {args.jobs} processes).",
        body,
    ]
    text = "\n\n".join(lines)
    print(text, flush=True)
    print(json.dumps(checks, indent=1), flush=True)
    if not args.no_write:
        write_section(section, text, report=args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
