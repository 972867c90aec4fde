"""Early-stopping rules as pure functions: no database, no clock (unit-tested on hand-built
curves in tests/server/test_early_stopping_rules.py).

Three ways a checkpoint's answer can say ``should_stop`` (docs/api.md, "Training runs and early
stopping"): SigOpt's per-run ``convergence`` criteria (all of them satisfied), the run reaching
``max_checkpoints``, and optfleet's cross-run rule (``asha`` or ``median``) at geometric rungs.
A stop, once answered, stands: every later checkpoint of the run answers it again, so an agent
that lost the answer and posts its next step still stops.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Rule = Literal["asha", "median", "none"]


@dataclass(frozen=True)
class ConvergenceCriterion:
    """SigOpt's criterion: no improvement of ``metric`` within the last ``lookback_checkpoints``
    checkpoints, considered once the run has ``min_checkpoints``."""

    name: str
    metric: str | None
    lookback_checkpoints: int
    min_checkpoints: int


@dataclass(frozen=True)
class StoppingPolicy:
    """An experiment's resolved training monitor. ``maximize`` maps each metric name (None for
    the unnamed metric) to whether larger values are better."""

    max_checkpoints: int
    criteria: tuple[ConvergenceCriterion, ...]
    rule: Rule
    metric: str | None
    min_step: int
    reduction_factor: int
    grace_step: int
    min_runs: int
    maximize: Mapping[str | None, bool] = field(default_factory=dict)

    def is_maximized(self, metric: str | None) -> bool:
        """Whether larger values of ``metric`` are better (unknown metrics: maximize)."""
        return self.maximize.get(metric, True)


@dataclass(frozen=True)
class Decision:
    """The answer to one checkpoint. ``reason`` is what the run records as its
    ``stopping_reason`` when this is its first stop (None when it does not stop, or stopped
    earlier)."""

    should_stop: bool
    stopping_reasons: dict[str, bool]
    reason: str | None = None


NEVER_STOP = Decision(should_stop=False, stopping_reasons={})


def is_better(value: float, than: float, maximize: bool) -> bool:
    """Whether ``value`` is strictly better than ``than``."""
    return value > than if maximize else value < than


def best_of(values: Sequence[float], maximize: bool) -> float:
    """The best of a non-empty sequence."""
    return max(values) if maximize else min(values)


def rung_reached(step: int, grace_step: int, reduction_factor: int) -> int | None:
    """The highest rung (``grace_step * reduction_factor**k``) at or below ``step``, or None
    before the first rung."""
    if step < grace_step:
        return None
    rung = grace_step
    while rung * reduction_factor <= step:
        rung *= reduction_factor
    return rung


def convergence_satisfied(
    curve: Sequence[float], criterion: ConvergenceCriterion, maximize: bool
) -> bool:
    """Whether ``criterion`` holds at the last checkpoint of ``curve`` (the run's values of the
    criterion's metric, oldest first, this checkpoint last): at checkpoint k ≥
    ``min_checkpoints`` with k > ``lookback_checkpoints``, the best of the last ``lookback``
    values is not better than the best before them."""
    k = len(curve)
    lookback = criterion.lookback_checkpoints
    if k < criterion.min_checkpoints or k <= lookback:
        return False
    recent = best_of(curve[-lookback:], maximize)
    before = best_of(curve[:-lookback], maximize)
    return not is_better(recent, before, maximize)


def asha_keeps(
    value: float, others: Sequence[float], reduction_factor: int, maximize: bool
) -> bool:
    """Whether a run with ``value`` at a rung is in the top ``ceil(n / r)`` of the values
    recorded there so far (``others`` plus its own, so n = len(others) + 1). Ties rank the
    newcomer with the values it equals."""
    n = len(others) + 1
    rank = 1 + sum(1 for other in others if is_better(other, value, maximize))
    return rank <= math.ceil(n / reduction_factor)


def median_stops(
    best_so_far: float, others: Sequence[float], min_runs: int, maximize: bool
) -> bool:
    """Whether the run's best value so far is worse than the median of the other runs' values
    at this rung, once at least ``min_runs`` other runs have one there."""
    if len(others) < min_runs:
        return False
    return is_better(statistics.median(others), best_so_far, maximize)


@dataclass(frozen=True)
class RungDecision:
    """The rule's verdict for a run that just reached ``rung_step`` with ``value``."""

    rung_step: int
    stops: bool


def rule_decision(
    policy: StoppingPolicy,
    *,
    step: int,
    rung_step: int,
    value: float,
    best_so_far: float,
    others: Sequence[float],
) -> RungDecision:
    """The cross-run rule at a rung: ``others`` are the values other runs recorded at
    ``rung_step`` before this one. Nothing stops before ``min_step``."""
    maximize = policy.is_maximized(policy.metric)
    if step < policy.min_step or policy.rule == "none":
        stops = False
    elif policy.rule == "asha":
        stops = not asha_keeps(value, others, policy.reduction_factor, maximize)
    else:
        stops = median_stops(best_so_far, others, policy.min_runs, maximize)
    return RungDecision(rung_step=rung_step, stops=stops)


def rule_reason(rule: Rule, rung_step: int) -> str:
    """The ``stopping_reason`` a run records when ``rule`` stopped it at ``rung_step``."""
    return f"{rule}_rung_{rung_step}"


def decide(
    policy: StoppingPolicy | None,
    *,
    checkpoint_count: int,
    curves: Mapping[str | None, Sequence[float]],
    rung: RungDecision | None,
    earlier_reason: str | None,
) -> Decision:
    """The answer to a run's ``checkpoint_count``-th checkpoint.

    ``curves`` maps each criterion metric to the run's values of it, this checkpoint's last;
    ``rung`` is the rule's verdict when this checkpoint reached a new rung; ``earlier_reason``
    is the run's recorded ``stopping_reason`` (it stopped before: the answer stays a stop).
    ``stopping_reasons`` maps each criterion name to whether it holds now, plus the rule's name
    (``asha``/``median``) to whether the rule has stopped the run.
    """
    if policy is None:
        return NEVER_STOP
    reasons: dict[str, bool] = {}
    for criterion in policy.criteria:
        curve = curves.get(criterion.metric, ())
        maximize = policy.is_maximized(criterion.metric)
        reasons[criterion.name] = convergence_satisfied(curve, criterion, maximize)
    at_max = checkpoint_count >= policy.max_checkpoints
    # A rung verdict at the run's last checkpoint stops nothing early: the run has its full
    # length (its value is a full-length value, not a configuration seen to be losing).
    rule_stopped_now = rung is not None and rung.stops and not at_max
    if policy.rule != "none":
        stopped_by_rule_before = earlier_reason is not None and earlier_reason.startswith(
            f"{policy.rule}_rung_"
        )
        reasons[policy.rule] = rule_stopped_now or stopped_by_rule_before
    converged = bool(policy.criteria) and all(reasons[c.name] for c in policy.criteria)
    if earlier_reason is not None:
        return Decision(should_stop=True, stopping_reasons=reasons)
    if rule_stopped_now and rung is not None:
        reason: str | None = rule_reason(policy.rule, rung.rung_step)
    elif converged:
        reason = "convergence"
    elif at_max:
        reason = "max_checkpoints"
    else:
        reason = None
    return Decision(should_stop=reason is not None, stopping_reasons=reasons, reason=reason)
