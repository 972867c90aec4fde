"""What early stopping spent and saved, from the observations' metadata (docs/api.md, "What
early stopping saved").

One implementation for the experiment page, `optfleet status` and the demo (the CLI calls it too,
as it calls ``cost_split``). Per observation, with the agents' keys (wire/cost_keys.py,
wire/stopping_keys.py) and every attempt counted (``instance_seconds``, ``cost_usd``):

- **stopped**: not failed and ``stopped_early`` set; **full-length**: neither failed nor stopped.
  Failed observations take no part: their cost is in the cost split's ``failed``.
- **spent**: the sum over the stopped observations; one without ``instance_seconds`` (or
  ``cost_usd``) makes the seconds (or USD) unknown and counts in ``unknown_seconds``
  (``unknown_cost``).
- **median full-length**: the median of the full-length observations' seconds (USD) among those
  that carry them; unknown (None) while none does.
- **estimated saving**: the sum over the stopped observations of max(0, median full-length -
  spent): what they would have cost to their full length, less what they did cost. Unknown
  (None, never 0) while there is no full-length run to compare with, and when a stopped run's own
  spend is unknown.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from suggestion_server.domain.cost_split import json_number, number_or_none
from suggestion_server.wire.cost_keys import COST_USD, INSTANCE_SECONDS
from suggestion_server.wire.stopping_keys import STOPPED_EARLY

_TRUE = ("1", "1.0", "true", "yes")


def flag_set(value: object) -> bool:
    """A metadata flag: peers send 1, 1.0, "1" or "true"."""
    return value is not None and str(value).strip().lower() in _TRUE


def stopped_early(metadata: Mapping[str, object]) -> bool:
    """The observation's training run was stopped early (the agent's ``stopped_early`` key)."""
    return flag_set(metadata.get(STOPPED_EARLY))


@dataclass(frozen=True)
class Amount:
    """Instance-seconds and USD, each None when unknown."""

    seconds: float | None
    usd: float | None

    def as_json(self) -> dict[str, float | None]:
        """``{"seconds", "usd"}``, rounded to 0.1 s and a millionth of a dollar."""
        return {"seconds": json_number(self.seconds, 1), "usd": json_number(self.usd, 6)}


@dataclass
class _Column:
    """One figure (seconds or USD) of the stopped runs and of the full-length runs."""

    stopped: list[float | None] = field(default_factory=list)
    full_length: list[float] = field(default_factory=list)

    def spent(self) -> float | None:
        return None if None in self.stopped else sum(v for v in self.stopped if v is not None)

    def median(self) -> float | None:
        return statistics.median(self.full_length) if self.full_length else None

    def saving(self) -> float | None:
        if not self.stopped:
            return 0.0  # nothing stopped: nothing saved, whatever ran
        median = self.median()
        if median is None or None in self.stopped:
            return None
        return sum(max(0.0, median - v) for v in self.stopped if v is not None)


@dataclass(frozen=True)
class StoppingSavings:
    """The stopped runs, their spend, the median full-length run and the estimated saving."""

    stopped: int
    full_length: int
    spent: Amount
    median_full_length: Amount
    estimated_saving: Amount
    unknown_seconds: int  # stopped observations without instance_seconds
    unknown_cost: int  # stopped observations without cost_usd

    def note(self) -> str:
        """Why some figure is unknown, or "" (the page and the CLI show the same words)."""
        if not self.stopped:
            return ""
        if not self.full_length:
            return "no full-length run yet to compare with"
        reasons = [
            f"no full-length run has {what}"
            for what, median in (
                ("recorded cost", self.median_full_length.usd),
                ("instance-seconds", self.median_full_length.seconds),
            )
            if median is None
        ]
        for count, what in (
            (self.unknown_cost, "recorded cost"),
            (self.unknown_seconds, "instance-seconds"),
        ):
            if count:
                runs = "run has" if count == 1 else "runs have"
                reasons.append(f"{count} stopped {runs} no {what}")
        return "; ".join(reasons)

    def as_json(self) -> dict[str, object]:
        """The figures as JSON (``usd``/``seconds`` null when unknown) and the note."""
        return {
            "stopped": self.stopped,
            "full_length": self.full_length,
            "spent": self.spent.as_json(),
            "median_full_length": self.median_full_length.as_json(),
            "estimated_saving": self.estimated_saving.as_json(),
            "unknown_seconds": self.unknown_seconds,
            "unknown_cost": self.unknown_cost,
            "note": self.note(),
        }


def stopping_savings(observations: Iterable[tuple[bool, Mapping[str, object]]]) -> StoppingSavings:
    """The figures over ``(failed, metadata)`` pairs (any order)."""
    seconds, usd = _Column(), _Column()
    stopped = full_length = 0
    for failed, metadata in observations:
        if failed:
            continue
        run_seconds = number_or_none(metadata.get(INSTANCE_SECONDS))
        run_usd = number_or_none(metadata.get(COST_USD))
        if stopped_early(metadata):
            stopped += 1
            seconds.stopped.append(run_seconds)
            usd.stopped.append(run_usd)
            continue
        full_length += 1
        if run_seconds is not None:
            seconds.full_length.append(run_seconds)
        if run_usd is not None:
            usd.full_length.append(run_usd)
    return StoppingSavings(
        stopped=stopped,
        full_length=full_length,
        spent=Amount(seconds.spent(), usd.spent()),
        median_full_length=Amount(seconds.median(), usd.median()),
        estimated_saving=Amount(seconds.saving(), usd.saving()),
        unknown_seconds=seconds.stopped.count(None),
        unknown_cost=usd.stopped.count(None),
    )
