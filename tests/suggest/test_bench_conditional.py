"""The quality benchmark's conditional problem: the engine beats random search on it (a few
seeds of the benchmark's fleet protocol), serving only active parameters throughout."""

from __future__ import annotations

import math
import statistics

from benchmarks.quality_fleet import run_fleet
from benchmarks.quality_methods import METHODS, Optimizer
from benchmarks.quality_problems import ACTIVE_BY_MODEL, PROBLEMS, conditional_models
from suggestion_server.optimizer.api import AssignmentValue

SEEDS = range(5)
BUDGET = 60
WORKERS = 8


class ActiveOnly:
    """An optimizer wrapper that checks every ask holds the model and its parameters only."""

    def __init__(self, inner: Optimizer) -> None:
        self.inner = inner

    def ask(self) -> tuple[int, dict[str, AssignmentValue]]:
        handle, assignments = self.inner.ask()
        assert set(assignments) == ACTIVE_BY_MODEL[str(assignments["model"])], assignments
        return handle, assignments

    def tell(self, handle: int, value: float) -> None:
        self.inner.tell(handle, value)


def test_the_problem_has_its_optimum_in_the_svm_branch() -> None:
    # Branin's minimum at (pi, 2.275), mapped back onto log C and log gamma.
    c = 10 ** (6 * (math.pi + 5) / 15 - 3)
    gamma = 10 ** (5 * 2.275 / 15 - 4)
    svm = {"model": "svm", "scale": 0.3, "C": c, "gamma": gamma}
    assert conditional_models(svm) < 1e-5
    forest = {"model": "forest", "scale": 0.3, "depth": 13, "features": 0.6}
    assert conditional_models(forest) == 0.15
    assert conditional_models({"model": "linear", "scale": 0.3, "alpha": 0.2}) == 0.4


def test_the_engine_beats_random_search_on_the_conditional_problem() -> None:
    problem = PROBLEMS["conditional6"]
    best: dict[str, list[float]] = {"random": [], "optfleet": []}
    for method, found in best.items():
        for seed in SEEDS:
            optimizer = METHODS[method].make(problem, seed)
            if method == "optfleet":
                optimizer = ActiveOnly(optimizer)
            run = run_fleet(problem, optimizer, seed, BUDGET, WORKERS)
            assert run.duplicate_open == 0
            found.append(min(run.values))
    # The optimum is 0, so the best value found is the regret. Measured: 0.0019 against 0.058.
    assert statistics.median(best["optfleet"]) < statistics.median(best["random"]) / 5, best
