"""SigOpt's stopping criteria of an experiment, from its observations' values alone.

As the open-source SigOpt server computes ``GET /experiments/{id}/stopping_criteria``
(docs/api.md, "Stopping criteria"):

- ``observation_budget_reached``: more observations than the budget (strictly: equal is not
  reached), failed ones included.
- ``possible_stagnation``: with D = ``LOOKBACK_FACTOR`` x the number of parameters and at least
  D + ``TOP_RESULTS`` observations, in creation order, failed ones at -inf and minimized metrics
  negated: the ``TOP_RESULTS``-th best value before the last D is at least the best of the last
  D (the last D observations found nothing the earlier ones had not beaten five times over).
  With two optimized metrics, only once the budget is reached: the Pareto front of all
  observations equals the front without the last D.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

LOOKBACK_FACTOR = 5
TOP_RESULTS = 5
BUDGET_REACHED = "observation_budget_reached"
STAGNATION = "possible_stagnation"

# One observation's optimized values, each to be maximized (-inf for a failed one).
Values = tuple[float, ...]


def stopping_reasons(
    values: Sequence[Values], parameters: int, observation_budget: int | None
) -> list[str]:
    """The reasons that hold, in SigOpt's order (stagnation first); ``values`` in creation
    order, one tuple per observation (one entry per optimized metric)."""
    budget_reached = observation_budget is not None and len(values) > observation_budget
    lookback = LOOKBACK_FACTOR * parameters
    stagnation = False
    if len(values) >= lookback + TOP_RESULTS and lookback > 0:
        if values and len(values[0]) > 1:
            stagnation = budget_reached and _front(values[:-lookback]) == _front(values)
        else:
            earlier = sorted(v[0] for v in values[:-lookback])
            stagnation = earlier[-TOP_RESULTS] >= max(v[0] for v in values[-lookback:])
    reasons = []
    if stagnation:
        reasons.append(STAGNATION)
    if budget_reached:
        reasons.append(BUDGET_REACHED)
    return reasons


def _front(values: Sequence[Values]) -> set[Values]:
    """The distinct value pairs no other observation dominates (maximization of both): a sweep
    by the first value, descending, keeping what beats every pair with a larger first value."""
    pairs = sorted(set(values), key=lambda v: (-v[0], -v[1]))
    front: set[Values] = set()
    best_second = -math.inf
    index = 0
    while index < len(pairs):
        top = pairs[index]  # the group of equal first values, best second value first
        if top[1] > best_second or not front:
            front.add(top)
        best_second = max(best_second, top[1])
        while index < len(pairs) and pairs[index][0] == top[0]:
            index += 1
    return front
