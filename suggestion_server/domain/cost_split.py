"""Where an experiment's observations' cost went, from the cost keys the agents stamp.

One implementation for the experiment page and for `optfleet status` and the demo (the CLI calls
it too: optfleet may import the server). The rules, per observation (keys in wire/cost_keys.py):

- a failed observation wasted every attempt: ``instance_seconds`` and ``cost_usd``;
- a successful one spent ``instance_seconds - earlier_attempts_seconds`` on the attempt that
  produced it, and wasted its earlier attempts (interrupted, crashed or taken over: their
  checkpoints may have saved part of that work, so this is an upper bound);
- an unknown amount is unknown (None), never 0. A missing ``cost_usd`` makes every sum it enters
  unknown. A missing ``earlier_attempts_cost_usd`` means "no earlier attempt" (0) only when
  ``earlier_attempts_seconds`` is 0 too; with earlier seconds it is unknown, so the earlier
  attempts' and the producing attempt's USD are unknown, and the observation counts in
  ``unknown_attempts`` so readers can say why. (A failed observation's cost needs no split:
  ``cost_usd`` covers every attempt.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from suggestion_server.wire.cost_keys import (
    COST_USD,
    EARLIER_ATTEMPTS_COST_USD,
    EARLIER_ATTEMPTS_SECONDS,
    INSTANCE_SECONDS,
    SPLIT_KEYS,
)


def number_or_none(value: object) -> float | None:
    """A metadata value as a finite float (peers may send numbers as strings), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def json_number(value: float | None, digits: int) -> float | None:
    """``value`` rounded for JSON; None when unknown or not finite (sums of huge stamped values
    can overflow, and JSON has no infinity)."""
    return None if value is None or not math.isfinite(value) else round(value, digits)


@dataclass
class Spend:
    """Instance-seconds and USD (None when some part's price is unknown)."""

    seconds: float = 0.0
    usd: float | None = 0.0

    def add(self, seconds: float, usd: float | None) -> None:
        """Add a part; an unknown part makes the USD unknown for good."""
        self.seconds += seconds
        self.usd = None if self.usd is None or usd is None else self.usd + usd

    def plus(self, other: Spend) -> Spend:
        """A new Spend: this one and ``other``."""
        total = Spend(self.seconds, self.usd)
        total.add(other.seconds, other.usd)
        return total

    def as_json(self) -> dict[str, float | None]:
        """``{"seconds", "usd"}``, rounded to 0.1 s and a millionth of a dollar."""
        return {
            "seconds": json_number(self.seconds, 1),
            "usd": json_number(self.usd, 6),
        }


@dataclass
class CostSplit:
    """The observations' cost: the total and where it went."""

    total: Spend = field(default_factory=Spend)  # every attempt of every observation
    evaluating: Spend = field(default_factory=Spend)  # the attempts that produced the results
    failed: Spend = field(default_factory=Spend)  # failed observations, every attempt
    earlier_attempts: Spend = field(default_factory=Spend)  # of successful observations
    unknown_attempts: int = 0  # successful observations whose earlier attempts have no USD
    priced: int = 0  # observations carrying any of the agents' cost keys
    cumulative_usd: list[float | None] = field(default_factory=list)  # running total, in order

    @property
    def wasted(self) -> Spend:
        """Failed evaluations and earlier attempts of successful ones."""
        return self.failed.plus(self.earlier_attempts)

    def as_json(self) -> dict[str, object]:
        """The figures as JSON (the running total is left to callers that want it)."""
        return {
            "priced": self.priced,
            "total": self.total.as_json(),
            "evaluating": self.evaluating.as_json(),
            "wasted": self.wasted.as_json(),
            "failed": self.failed.as_json(),
            "earlier_attempts": self.earlier_attempts.as_json(),
            "unknown_attempts": self.unknown_attempts,
        }


def attempts_of(metadata: Mapping[str, object]) -> tuple[Spend, Spend]:
    """(the attempt that reported, the earlier attempts) of one observation."""
    total_s = number_or_none(metadata.get(INSTANCE_SECONDS)) or 0.0
    earlier_s = number_or_none(metadata.get(EARLIER_ATTEMPTS_SECONDS)) or 0.0
    total_usd = number_or_none(metadata.get(COST_USD))
    earlier_usd = number_or_none(metadata.get(EARLIER_ATTEMPTS_COST_USD))
    if earlier_usd is None and earlier_s == 0:
        earlier_usd = 0.0  # no earlier attempt, not an unknown one
    own_usd = None if total_usd is None or earlier_usd is None else total_usd - earlier_usd
    return Spend(total_s - earlier_s, own_usd), Spend(earlier_s, earlier_usd)


def cost_split(observations: Iterable[tuple[bool, Mapping[str, object]]]) -> CostSplit:
    """The split over ``(failed, metadata)`` pairs, oldest first (the running total's order)."""
    split = CostSplit()
    running: float | None = 0.0
    for failed, metadata in observations:
        cost = number_or_none(metadata.get(COST_USD))
        seconds = number_or_none(metadata.get(INSTANCE_SECONDS)) or 0.0
        split.total.add(seconds, cost)
        if any(key in metadata for key in SPLIT_KEYS):
            split.priced += 1
        running = None if running is None or cost is None else running + cost
        split.cumulative_usd.append(running)
        if failed:
            split.failed.add(seconds, cost)
            continue
        own, earlier = attempts_of(metadata)
        split.evaluating.add(own.seconds, own.usd)
        split.earlier_attempts.add(earlier.seconds, earlier.usd)
        if earlier.usd is None:
            split.unknown_attempts += 1
    return split
