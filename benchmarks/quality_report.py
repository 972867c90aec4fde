"""Aggregating quality runs: regret, median and IQR over seeds, normalized score, mean rank.

Simple regret after n observations = best value among the first n - the problem's optimum. A
problem without a known optimum (the scikit-learn task) uses a reference: the lower of a
precomputed value and the best any method found in the same run, so regret is never negative.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from benchmarks._report import markdown_table, percentile


@dataclass(frozen=True)
class RunRecord:
    """One finished (problem, method, seed) run: the values in arrival order and the protocol."""

    problem: str
    method: str
    seed: int
    workers: int
    values: list[float]
    max_open: int
    duplicate_open: int
    seconds: float
    cpu_seconds: float = 0.0  # 0 in runs saved before it was recorded
    commit: str = ""  # the code's commit (benchmarks._provenance); "" in runs saved before


def regret_curve(values: Sequence[float], optimum: float) -> list[float]:
    """Regret after each observation: best so far - optimum (non-increasing)."""
    curve: list[float] = []
    best = float("inf")
    for value in values:
        best = min(best, value)
        curve.append(max(best - optimum, 0.0))
    return curve


def optima(
    records: Sequence[RunRecord], known: Mapping[str, float | None], reference: Mapping[str, float]
) -> dict[str, float]:
    """Each problem's optimum: the known one, else min(reference, best value of any run)."""
    result: dict[str, float] = {}
    for problem, optimum in known.items():
        if optimum is not None:
            result[problem] = optimum
            continue
        found = [min(r.values) for r in records if r.problem == problem and r.values]
        candidates = found + ([reference[problem]] if problem in reference else [])
        if candidates:
            result[problem] = min(candidates)
    return result


@dataclass(frozen=True)
class Cell:
    """Regret of one (problem, method) over seeds at one checkpoint."""

    median: float
    q25: float
    q75: float


def cells(
    records: Sequence[RunRecord], optimum: Mapping[str, float], checkpoints: Sequence[int]
) -> dict[tuple[str, str, int], Cell]:
    """(problem, method, checkpoint) → median and IQR of the regret over seeds."""
    grouped: dict[tuple[str, str], list[list[float]]] = {}
    for r in records:
        grouped.setdefault((r.problem, r.method), []).append(
            regret_curve(r.values, optimum[r.problem])
        )
    result: dict[tuple[str, str, int], Cell] = {}
    for (problem, method), curves in grouped.items():
        for n in checkpoints:
            at_n = [curve[min(n, len(curve)) - 1] for curve in curves if curve]
            if at_n:
                result[problem, method, n] = Cell(
                    statistics.median(at_n), percentile(at_n, 25), percentile(at_n, 75)
                )
    return result


def ranks(medians: Mapping[str, float]) -> dict[str, float]:
    """Rank of each method by median regret (1 = best), ties sharing their mean rank."""
    ordered = sorted(medians, key=lambda m: medians[m])
    result: dict[str, float] = {}
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and medians[ordered[j + 1]] == medians[ordered[i]]:
            j += 1
        for k in range(i, j + 1):
            result[ordered[k]] = (i + j) / 2 + 1
        i = j + 1
    return result


@dataclass(frozen=True)
class Summary:
    """Per method: mean normalized score and mean rank over problems, at the last checkpoint."""

    score: dict[str, float]
    rank: dict[str, float]


def summarize(
    final: Mapping[tuple[str, str], float], problems: Sequence[str], methods: Sequence[str]
) -> Summary:
    """``final`` maps (problem, method) to median regret at the budget.

    Score per problem = 100 x (random - method) / random (100 = optimum found, 0 = as good as
    random search, negative = worse), averaged over the problems where both ran.
    """
    scores: dict[str, list[float]] = {m: [] for m in methods}
    rank_lists: dict[str, list[float]] = {m: [] for m in methods}
    for problem in problems:
        ran = {m: final[problem, m] for m in methods if (problem, m) in final}
        for method, rank in ranks(ran).items():
            rank_lists[method].append(rank)
        random_regret = ran.get("random")
        if random_regret:
            for method, regret in ran.items():
                scores[method].append(100 * (random_regret - regret) / random_regret)
    return Summary(
        score={m: statistics.mean(v) for m, v in scores.items() if v},
        rank={m: statistics.mean(v) for m, v in rank_lists.items() if v},
    )


def fmt(x: float) -> str:
    """Two significant digits, as in the issue's table."""
    if x == 0:
        return "0"
    return f"{x:.2g}"


def fmt_cell(cell: Cell | None) -> str:
    return "-" if cell is None else f"{fmt(cell.median)} ({fmt(cell.q25)}-{fmt(cell.q75)})"


def regret_table(
    table: Mapping[tuple[str, str, int], Cell],
    problem_labels: Mapping[str, str],
    method_labels: Mapping[str, str],
    not_run: Mapping[tuple[str, str], str],
    checkpoint: int,
) -> str:
    """Problems x methods: median regret (IQR) at ``checkpoint``, or why a method did not run."""
    rows = []
    for problem, label in problem_labels.items():
        row = [label]
        for method in method_labels:
            reason = not_run.get((problem, method))
            row.append(reason or fmt_cell(table.get((problem, method, checkpoint))))
        rows.append(row)
    return markdown_table(["problem", *method_labels.values()], rows)


def checkpoint_table(
    table: Mapping[tuple[str, str, int], Cell],
    problem_labels: Mapping[str, str],
    method_labels: Mapping[str, str],
    checkpoints: Sequence[int],
) -> str:
    """One row per (problem, method): median regret at each checkpoint."""
    rows = []
    for problem, plabel in problem_labels.items():
        for method, mlabel in method_labels.items():
            if (problem, method, checkpoints[-1]) in table:
                medians = [fmt(table[problem, method, n].median) for n in checkpoints]
                rows.append([plabel, mlabel, *medians])
    return markdown_table(["problem", "method", *(f"@{n}" for n in checkpoints)], rows)
