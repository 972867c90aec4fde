"""Statistics of the broad benchmark: regret per problem, paired tests, the COCO-style ECDF.

Regret after n evaluations = the best *true* value among the first n (the noiseless value on
noisy problems) minus the instance's optimum, floored at ``REGRET_FLOOR`` (COCO's final target
precision: below it two methods are equal). An instance without a known optimum uses the lower
of its reference and the best value any run found on it (``optima``).

Engine against a baseline on one problem: paired over seeds (each seed is one instance, the
same for both), Wilcoxon signed-rank two-sided at ``ALPHA``: a win or a loss when significant
(by the sign of the median difference), a tie otherwise (and when every pair is equal).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from benchmarks._report import percentile

REGRET_FLOOR = 1e-8
ALPHA = 0.05
# COCO's targets for bbob: f - fopt in 10^[2, -8], 51 of them (5 per decade).
COCO_TARGETS = tuple(10.0 ** (2 - k / 5) for k in range(51))
# Real tasks (errors, no known optimum): targets relative to the problem's scale.
RELATIVE_TARGETS = tuple(10.0 ** (-k / 5) for k in range(21))
ECDF_POINTS = (1, 2, 5, 10, 20, 40)  # evaluations per dimension


@dataclass
class BroadRecord:
    """One finished run, as saved in its result file."""

    split: str
    problem: str
    group: str
    dimension: int
    method: str
    seed: int
    workers: int
    budget: int
    instance: str
    values: list[float]
    true_values: list[float]
    optimum: float | None
    reference: float | None
    near_duplicates: int
    exact_duplicates: int
    asks: int
    max_open: int
    seconds: float
    cpu_seconds: float
    commit: str = ""
    settings: dict[str, str] = field(default_factory=dict)


def optima(records: Sequence[BroadRecord]) -> dict[str, float]:
    """Instance id -> optimum (known, else min of reference and every run's best)."""
    known: dict[str, float] = {}
    found: dict[str, float] = defaultdict(lambda: math.inf)
    for r in records:
        if r.optimum is not None:
            known[r.instance] = r.optimum
        best = min(r.true_values) if r.true_values else math.inf
        found[r.instance] = min(found[r.instance], best)
        if r.reference is not None:
            found[r.instance] = min(found[r.instance], r.reference)
    return {i: known.get(i, found[i]) for i in set(known) | set(found)}


def regret_at(record: BroadRecord, optimum: float, n: int) -> float:
    """Regret after the first ``n`` evaluations (floored)."""
    best = min(record.true_values[: max(n, 1)])
    return max(best - optimum, REGRET_FLOOR)


def curve(record: BroadRecord, optimum: float) -> np.ndarray:
    """Regret after each evaluation (floored, non-increasing)."""
    best = np.minimum.accumulate(np.asarray(record.true_values, dtype=float))
    return np.maximum(best - optimum, REGRET_FLOOR)


@dataclass(frozen=True)
class Cell:
    """Regret over the seeds of one (problem, method, fleet, checkpoint)."""

    median: float
    q25: float
    q75: float
    by_seed: dict[int, float]


def cells(
    records: Sequence[BroadRecord],
    optimum: Mapping[str, float],
    checkpoints: Mapping[str, int],
    absolute: bool = False,
) -> dict[tuple[str, str, int, str], Cell]:
    """(problem, method, workers, checkpoint name) -> Cell; ``checkpoints`` maps a name
    (e.g. "10d") to evaluations per dimension (``absolute``: to evaluations)."""
    grouped: dict[tuple[str, str, int], list[BroadRecord]] = defaultdict(list)
    for r in records:
        grouped[r.problem, r.method, r.workers].append(r)
    result: dict[tuple[str, str, int, str], Cell] = {}
    for (problem, method, workers), runs in grouped.items():
        for name, per_dim in checkpoints.items():
            n = per_dim if absolute else per_dim * runs[0].dimension
            at = {r.seed: regret_at(r, optimum[r.instance], n) for r in runs if r.budget >= n}
            if at:
                values = list(at.values())
                result[problem, method, workers, name] = Cell(
                    statistics.median(values), percentile(values, 25), percentile(values, 75), at
                )
    return result


def paired(engine: Cell, baseline: Cell) -> tuple[str, float]:
    """("win" | "tie" | "loss", p-value) of the engine against a baseline over common seeds."""
    from scipy.stats import wilcoxon

    seeds = sorted(set(engine.by_seed) & set(baseline.by_seed))
    # Compared on a log scale: regrets span decades, and equal ratios are equal progress.
    a = np.log10([engine.by_seed[s] for s in seeds])
    b = np.log10([baseline.by_seed[s] for s in seeds])
    diff = a - b
    if len(seeds) < 2 or not np.any(np.abs(diff) > 1e-12):
        return "tie", 1.0
    p = float(wilcoxon(a, b, zero_method="zsplit").pvalue)
    if p >= ALPHA:
        return "tie", p
    return ("win" if float(np.median(diff)) < 0 else "loss"), p


def first_or_tied(
    table: Mapping[tuple[str, str, int, str], Cell],
    problem: str,
    workers: int,
    checkpoint: str,
    engine: str,
    methods: Sequence[str],
) -> tuple[bool, str]:
    """Whether ``engine`` has the lowest median or is statistically tied with the method that
    has it; and that method's name."""
    present = [m for m in methods if (problem, m, workers, checkpoint) in table]
    best = min(present, key=lambda m: table[problem, m, workers, checkpoint].median)
    mine = table[problem, engine, workers, checkpoint]
    if mine.median <= table[problem, best, workers, checkpoint].median:
        return True, engine
    outcome, _ = paired(mine, table[problem, best, workers, checkpoint])
    return outcome != "loss", best


def ecdf(
    records: Sequence[BroadRecord],
    optimum: Mapping[str, float],
    scale: Mapping[str, float],
    points: Sequence[int] = ECDF_POINTS,
) -> dict[tuple[str, int], list[float | None]]:
    """(method, workers) -> fraction of (run, target) pairs reached after ``points`` x d
    evaluations (None where the budget is shorter), COCO-style. bbob-based problems use COCO's
    absolute targets; real tasks targets relative to ``scale`` (their typical first regret)."""
    reached: dict[tuple[str, int], list[list[float]]] = defaultdict(lambda: [[] for _ in points])
    for r in records:
        regrets = curve(r, optimum[r.instance])
        targets = (
            COCO_TARGETS
            if r.group != "real"
            else tuple(t * scale.get(r.problem, 1.0) for t in RELATIVE_TARGETS)
        )
        for k, per_dim in enumerate(points):
            n = per_dim * r.dimension
            if n > len(regrets):
                continue
            at = float(regrets[n - 1])
            hit = sum(at <= t for t in targets) / len(targets)
            reached[r.method, r.workers][k].append(hit)
    return {
        key: [statistics.mean(v) if v else None for v in lists] for key, lists in reached.items()
    }


def scales(records: Sequence[BroadRecord], optimum: Mapping[str, float]) -> dict[str, float]:
    """Per problem: the median regret of a run's first evaluation (a random point's)."""
    first: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r.true_values:
            first[r.problem].append(max(r.true_values[0] - optimum[r.instance], REGRET_FLOOR))
    return {p: statistics.median(v) for p, v in first.items()}


def fmt(x: float) -> str:
    """Two significant digits; the floor shown as ≤1e-8."""
    if x <= REGRET_FLOOR:
        return "≤1e-8"
    return f"{x:.2g}"
