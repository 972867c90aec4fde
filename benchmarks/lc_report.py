"""The learning-curves section: best final value against instance-seconds, and the targets."""

from __future__ import annotations

import math
from collections.abc import Sequence

from benchmarks._report import markdown_table, median, percentile
from benchmarks.lc_fleet import ALL_METHODS as METHODS
from benchmarks.lc_fleet import LCRun
from benchmarks.lc_problems import ALL_PROBLEMS as PROBLEMS

FRACTIONS = (1 / 9, 1 / 3, 2 / 3, 1.0)
FRACTION_LABELS = ("1/9", "1/3", "2/3", "1")
BASELINE = "optfleet"
STOPPING = ("optfleet_asha", "optfleet_median")
OPTUNA_PRUNERS = ("tpe_hyperband", "tpe_median")
TOLERANCE = 0.01  # "within 1 %" of the no-stopping run's final best
TARGET_FRACTION = 1 / 3


_NEVER = 1e300  # inf in percentile arithmetic would give NaN (inf x 0)


def _g(x: float) -> str:
    return "-" if x >= _NEVER / 1e10 or math.isinf(x) else f"{x:.4g}"


def _spread(values: Sequence[float]) -> str:
    """Median (interquartile range); inf (never) counts as worse than everything."""
    finite = [min(v, _NEVER) for v in values]
    return f"{_g(median(finite))} ({_g(percentile(finite, 25))}-{_g(percentile(finite, 75))})"


def reach_target(value: float) -> float:
    """The value a run must reach to be within ``TOLERANCE`` of ``value`` (minimized)."""
    return value + TOLERANCE * abs(value)


def _by(runs: Sequence[LCRun]) -> dict[tuple[str, str], dict[int, LCRun]]:
    grouped: dict[tuple[str, str], dict[int, LCRun]] = {}
    for run in runs:
        grouped.setdefault((run.problem, run.method), {})[run.seed] = run
    return grouped


def fractions_to_reach(runs: dict[int, LCRun], baseline: dict[int, LCRun]) -> list[float]:
    """Per seed: the share of the baseline's instance-seconds a run needed to come within 1 %
    of the baseline run's final best (same seed); inf when it never did."""
    out = []
    for seed, run in sorted(runs.items()):
        base = baseline.get(seed)
        if base is None or not base.finals:
            continue
        target = reach_target(base.best_at(base.budget))
        out.append(run.seconds_to_reach(target) / base.budget)
    return out


def curves_table(runs: Sequence[LCRun], problems: Sequence[str], methods: Sequence[str]) -> str:
    grouped = _by(runs)
    rows = []
    for problem in problems:
        for method in methods:
            seeds = grouped.get((problem, method), {})
            if not seeds:
                continue
            cells = []
            for fraction in FRACTIONS:
                cells.append(_spread([r.best_at(fraction * r.budget) for r in seeds.values()]))
            trials = median([r.trials for r in seeds.values()])
            full = median([len(r.finals) for r in seeds.values()])
            rows.append(
                [PROBLEMS[problem].title, METHODS[method][0], *cells, f"{trials:g}", f"{full:g}"]
            )
    header = ["problem", "method", *(f"@{f}" for f in FRACTION_LABELS), "trials", "full runs"]
    return markdown_table(header, rows)


def targets_table(
    runs: Sequence[LCRun], problems: Sequence[str], methods: Sequence[str]
) -> tuple[str, list[str]]:
    """Per problem and stopping method: the share of the no-stopping run's instance-seconds
    needed to reach its final best (within 1 %), and the verdicts."""
    grouped = _by(runs)
    rows, verdicts = [], []
    for problem in problems:
        baseline = grouped.get((problem, BASELINE), {})
        if not baseline:
            continue
        for method in methods:
            if method == BASELINE or (problem, method) not in grouped:
                continue
            shares = fractions_to_reach(grouped[(problem, method)], baseline)
            if not shares:
                continue
            reached = sum(1 for s in shares if s <= 1.0)
            within = sum(1 for s in shares if s <= TARGET_FRACTION)
            rows.append(
                [
                    PROBLEMS[problem].title,
                    METHODS[method][0],
                    _spread(shares),
                    f"{within}/{len(shares)}",
                    f"{reached}/{len(shares)}",
                ]
            )
            if method in STOPPING:
                met = median(shares) <= TARGET_FRACTION
                verdicts.append(
                    f"{PROBLEMS[problem].title}, {METHODS[method][0]}: median share "
                    f"{_g(median(shares))} -> target {'met' if met else 'NOT met'}"
                )
    header = [
        "problem",
        "method",
        "share of no-stopping instance-seconds to reach its final best (median, IQR; - = never)",
        "seeds within 1/3",
        "seeds within the budget",
    ]
    return markdown_table(header, rows), verdicts


def comparisons(runs: Sequence[LCRun], problems: Sequence[str]) -> list[str]:
    """optfleet with stopping against no stopping (equal dollars) and Optuna's best pruner."""
    grouped = _by(runs)
    lines = []
    for problem in problems:
        title = PROBLEMS[problem].title
        base = grouped.get((problem, BASELINE), {})
        pruners = [m for m in OPTUNA_PRUNERS if (problem, m) in grouped]
        for method in STOPPING:
            mine = grouped.get((problem, method), {})
            if not mine:
                continue
            parts = []
            for fraction, label in zip(FRACTIONS, FRACTION_LABELS):
                ours = median([r.best_at(fraction * r.budget) for r in mine.values()])
                if base:
                    none = median([r.best_at(fraction * r.budget) for r in base.values()])
                    parts.append(
                        f"@{label}: {_g(ours)} vs no stopping {_g(none)} "
                        f"({'not worse' if ours <= none else 'WORSE'})"
                    )
                if pruners:
                    best = min(
                        median(
                            [r.best_at(fraction * r.budget) for r in grouped[(problem, m)].values()]
                        )
                        for m in pruners
                    )
                    parts.append(
                        f"vs Optuna's best pruner {_g(best)} "
                        f"({'not worse' if ours <= best else 'WORSE'})"
                    )
            paired = ""
            if base:
                wins = ties = losses = 0
                for seed, run in mine.items():
                    if seed not in base:
                        continue
                    a, b = run.best_at(run.budget), base[seed].best_at(run.budget)
                    wins += a < b
                    ties += a == b
                    losses += a > b
                paired = f"; final best vs no stopping per seed W/T/L {wins}/{ties}/{losses}"
            lines.append(f"- {title}, {METHODS[method][0]}: " + "; ".join(parts) + paired)
    return lines
