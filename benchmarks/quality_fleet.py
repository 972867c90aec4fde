"""A simulated fleet of asynchronous workers, the protocol of the quality benchmark.

Time is simulated: each evaluation takes a random duration (uniform 0.5-1.5, drawn from the
run's seed), so workers finish out of order as on a real fleet. At time 0 every worker asks for
a suggestion; whenever a worker finishes it reports its observation and asks again, until
``budget`` suggestions have been handed out. So at most ``workers`` suggestions are open, and
the run ends with exactly ``budget`` observations. The optimizer's own compute time does not
advance the simulated clock (it is measured separately as wall time).
"""

from __future__ import annotations

import heapq
import random
import time
from dataclasses import dataclass, field

from benchmarks.quality_methods import Optimizer
from benchmarks.quality_problems import Problem
from suggestion_server.optimizer.api import AssignmentValue

DURATION_RANGE = (0.5, 1.5)
# Two numeric assignments closer than this count as the same point (the 1e-9 target).
DUPLICATE_TOLERANCE = 1e-9


@dataclass
class FleetRun:
    """What one (problem, method, seed) run observed, in the order observations arrived."""

    values: list[float] = field(default_factory=list)
    max_open: int = 0
    duplicate_open: int = 0  # asks whose assignments equal an already open suggestion's
    asks: int = 0
    seconds: float = 0.0  # wall time: optimizer plus objective
    cpu_seconds: float = 0.0  # this process's CPU time over the run (load-independent)

    def best_so_far(self) -> list[float]:
        """The best value after each observation (non-increasing)."""
        best: list[float] = []
        for value in self.values:
            best.append(value if not best else min(best[-1], value))
        return best


def same_point(a: dict[str, AssignmentValue], b: dict[str, AssignmentValue]) -> bool:
    """Equal assignments, numbers within ``DUPLICATE_TOLERANCE``."""
    if a.keys() != b.keys():
        return False
    for name, value in a.items():
        other = b[name]
        if isinstance(value, str) or isinstance(other, str):
            if value != other:
                return False
        elif abs(float(value) - float(other)) > DUPLICATE_TOLERANCE:
            return False
    return True


def run_fleet(
    problem: Problem, optimizer: Optimizer, seed: int, budget: int, workers: int
) -> FleetRun:
    """Drive ``optimizer`` with ``workers`` simulated asynchronous workers for ``budget`` evals."""
    durations = random.Random(f"durations-{seed}")
    run = FleetRun()
    # (finish time, tie-breaker, handle, assignments): the evaluations in flight.
    in_flight: list[tuple[float, int, int, dict[str, AssignmentValue]]] = []
    started, cpu_started = time.perf_counter(), time.process_time()

    def ask(now: float) -> None:
        handle, assignments = optimizer.ask()
        if any(same_point(assignments, other) for *_, other in in_flight):
            run.duplicate_open += 1
        finish = now + durations.uniform(*DURATION_RANGE)
        heapq.heappush(in_flight, (finish, run.asks, handle, assignments))
        run.asks += 1
        run.max_open = max(run.max_open, len(in_flight))

    for _ in range(min(workers, budget)):
        ask(0.0)
    while in_flight:
        now, _, handle, assignments = heapq.heappop(in_flight)
        value = problem.objective(assignments)
        optimizer.tell(handle, value)
        run.values.append(value)
        if run.asks < budget:
            ask(now)
    run.seconds = time.perf_counter() - started
    run.cpu_seconds = time.process_time() - cpu_started
    return run
