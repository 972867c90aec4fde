"""The broad benchmark's simulated fleet: ``quality_fleet``'s protocol plus near-duplicate counts.

Asynchronous workers on a simulated clock (evaluation durations uniform 0.5-1.5 from the seed);
every finishing worker reports and asks again until the budget is handed out. A suggestion is a
*near-duplicate* when some suggestion still being evaluated by another worker is within
``NEAR_FRACTION`` of the range in every numeric parameter (in the parameter's search scale:
log-scaled ones in log space) and equal in every categorical one.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from benchmarks.broad_methods import Optimizer
from benchmarks.quality_fleet import DURATION_RANGE
from suggestion_server.optimizer.api import AssignmentValue, ParameterSpec

NEAR_FRACTION = 1e-3


@dataclass
class BroadRun:
    """What one run observed, in arrival order."""

    values: list[float] = field(default_factory=list)  # what the optimizer was told
    true_values: list[float] = field(default_factory=list)  # what regret is measured on
    asks: int = 0
    max_open: int = 0
    near_duplicates: int = 0
    exact_duplicates: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def scaled(params: Sequence[ParameterSpec]) -> Callable[[Mapping[str, AssignmentValue]], tuple]:
    """A function mapping an assignment to (numbers as fractions of their range, categories)."""

    def key(a: Mapping[str, AssignmentValue]) -> tuple[tuple[float, ...], tuple[str, ...]]:
        numbers: list[float] = []
        labels: list[str] = []
        for p in params:
            value = a[p.name]
            if p.type == "categorical":
                labels.append(str(value))
                continue
            low, high, x = float(p.low or 0.0), float(p.high or 0.0), float(value)
            if p.log:
                low, high, x = math.log(low), math.log(high), math.log(x)
            numbers.append((x - low) / (high - low) if high > low else 0.0)
        return tuple(numbers), tuple(labels)

    return key


def near(a: tuple, b: tuple, fraction: float = NEAR_FRACTION) -> bool:
    """Whether two ``scaled`` keys are near-duplicates."""
    return a[1] == b[1] and all(abs(x - y) <= fraction for x, y in zip(a[0], b[0]))


def run_broad_fleet(
    parameters: Sequence[ParameterSpec],
    evaluate: Callable[[Mapping[str, AssignmentValue]], tuple[float, float]],
    optimizer: Optimizer,
    seed: int,
    budget: int,
    workers: int,
) -> BroadRun:
    """Drive ``optimizer`` with ``workers`` asynchronous workers for ``budget`` evaluations."""
    durations = random.Random(f"durations-{seed}")
    key = scaled(parameters)
    run = BroadRun()
    in_flight: list[tuple[float, int, int, dict[str, AssignmentValue], tuple]] = []
    started, cpu_started = time.perf_counter(), time.process_time()

    def ask(now: float) -> None:
        handle, assignments = optimizer.ask()
        point = key(assignments)
        if any(near(point, other[4]) for other in in_flight):
            run.near_duplicates += 1
        if any(near(point, other[4], 0.0) for other in in_flight):
            run.exact_duplicates += 1
        finish = now + durations.uniform(*DURATION_RANGE)
        heapq.heappush(in_flight, (finish, run.asks, handle, assignments, point))
        run.asks += 1
        run.max_open = max(run.max_open, len(in_flight))

    for _ in range(min(workers, budget)):
        ask(0.0)
    while in_flight:
        now, _, handle, assignments, _ = heapq.heappop(in_flight)
        told, true = evaluate(assignments)
        optimizer.tell(handle, told)
        run.values.append(told)
        run.true_values.append(true)
        if run.asks < budget:
            ask(now)
    run.seconds = time.perf_counter() - started
    run.cpu_seconds = time.process_time() - cpu_started
    return run
