"""An experiment's spend and where it went: evaluating, idle or booting, wasted.

Pure functions over plain data (the fleet's EC2 spend, observations, open suggestions), shared by
`optfleet status` and the demo. The fleet total is EC2's view (launch to now or termination,
times each instance's price); the split comes from what the agents stamped:

- the observations' part is the server's own function, ``suggestion_server.domain.cost_split``
  (the experiment page shows the same figures): evaluating is the attempt that produced each
  successful observation, wasted is failed observations (every attempt) and earlier attempts of
  successful ones, an earlier attempt without a recorded cost is unknown (``unknown_attempts``);
- evaluating also holds the running attempts of open suggestions;
- idle/booting: the rest of the fleet's time (boot, waiting, draining, and duplicate work whose
  result was dropped after its last lease renewal);
- early stopping: the runs stopped early, their spend and the estimated saving, by the server's
  ``suggestion_server.domain.stopping_savings`` (the page shows the same figures).

USD follows the same split; an unknown price makes that part unknown (None), never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from optfleet.observations import observation_value
from suggestion_server.domain.cost_split import CostSplit, Spend, cost_split, number_or_none
from suggestion_server.domain.stopping_savings import StoppingSavings, stopping_savings
from worker_bootstrap.adoption import oldest_first
from worker_bootstrap.cost import keys
from worker_bootstrap.cost.attempt_spend import spent_so_far
from worker_bootstrap.cost.cap import parse_cap
from worker_bootstrap.cost.fleet_spend import FleetSpend


@dataclass
class ObservationCost:
    """One observation's cost line (the page's column, the demo's table)."""

    observation: str
    suggestion: str
    instance_id: str
    failed: bool
    value: float | None
    instance_seconds: float | None
    cost_usd: float | None
    price_source: str
    cumulative_usd: float | None = None


@dataclass
class ExperimentCost:
    """Totals, the split, per-observation costs and the cap."""

    fleet: Spend | None  # None when EC2 could not be read
    split: CostSplit = field(default_factory=CostSplit)  # the observations' part
    in_progress: Spend = field(default_factory=Spend)
    observations: list[ObservationCost] = field(default_factory=list)
    fleet_usd_per_hour: float | None = None
    unknown_prices: list[str] = field(default_factory=list)
    cap_usd: float | None = None
    budget_reached: bool = False  # the observation budget came first: the cap did not stop it
    control_plane: Spend | None = None  # its EC2 instances, when asked for (shared by experiments)
    stopping: StoppingSavings = field(default_factory=lambda: stopping_savings([]))

    @property
    def evaluating(self) -> Spend:
        """Attempts that produced successful observations, and the open suggestions' attempts."""
        return self.split.evaluating.plus(self.in_progress)

    @property
    def failed(self) -> Spend:
        return self.split.failed

    @property
    def interrupted(self) -> Spend:
        """Earlier attempts of successful observations."""
        return self.split.earlier_attempts

    @property
    def wasted(self) -> Spend:
        return self.split.wasted

    @property
    def idle_booting(self) -> Spend | None:
        """Fleet time not spent on any attempt (never below 0: EC2 forgets old instances)."""
        if self.fleet is None:
            return None
        used = self.evaluating.plus(self.wasted)
        usd = None
        if self.fleet.usd is not None and used.usd is not None:
            usd = max(0.0, self.fleet.usd - used.usd)
        return Spend(max(0.0, self.fleet.seconds - used.seconds), usd)

    @property
    def cap_reached(self) -> bool:
        """The fleet's estimate has reached ``max_cost_usd``: agents create no new suggestions."""
        fleet_usd = self.fleet.usd if self.fleet is not None else None
        return self.cap_usd is not None and fleet_usd is not None and fleet_usd >= self.cap_usd

    @property
    def stopped_by_cap(self) -> bool:
        """The cap, not the observation budget, is what stops (or stopped) the experiment."""
        return self.cap_reached and not self.budget_reached

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dictionary (``optfleet status --json``'s ``cost``)."""
        idle = self.idle_booting
        return {
            "fleet": None if self.fleet is None else self.fleet.as_json(),
            "fleet_usd_per_hour": self.fleet_usd_per_hour,
            "evaluating": self.evaluating.as_json(),
            "in_progress": self.in_progress.as_json(),
            "idle_booting": None if idle is None else idle.as_json(),
            "wasted": {
                **self.wasted.as_json(),
                "failed": self.failed.as_json(),
                "interrupted": self.interrupted.as_json(),
                "unknown_attempts": self.split.unknown_attempts,
            },
            "control_plane": None if self.control_plane is None else self.control_plane.as_json(),
            "max_cost_usd": self.cap_usd,
            "cap_reached": self.cap_reached,
            "stopped_by_cap": self.stopped_by_cap,
            "unknown_prices": self.unknown_prices,
            "stopping": self.stopping.as_json(),
            "observations": [asdict(o) for o in self.observations],
        }


def experiment_cost(
    fleet: FleetSpend | None,
    observations: list[dict[str, Any]],
    open_suggestions: list[dict[str, Any]],
    experiment: dict[str, Any] | None = None,
) -> ExperimentCost:
    """The split for one experiment; ``fleet`` None when EC2 could not be read."""
    result = ExperimentCost(
        fleet=None if fleet is None else Spend(fleet.seconds, fleet.usd),
        fleet_usd_per_hour=None if fleet is None else fleet.usd_per_hour,
        unknown_prices=[] if fleet is None else fleet.unknown(),
    )
    try:
        result.cap_usd = parse_cap(
            ((experiment or {}).get("metadata") or {}).get(keys.MAX_COST_USD), keys.MAX_COST_USD
        )
    except ValueError:
        result.cap_usd = None
    budget = (experiment or {}).get("observation_budget")
    count = ((experiment or {}).get("progress") or {}).get("observation_count")
    if isinstance(budget, int) and isinstance(count, int):
        result.budget_reached = count >= budget
    ordered = sorted(observations, key=oldest_first)
    pairs = [(bool(o.get("failed")), o.get("metadata") or {}) for o in ordered]
    result.split = cost_split(pairs)
    result.stopping = stopping_savings(pairs)
    for observation, cumulative in zip(ordered, result.split.cumulative_usd):
        metadata = observation.get("metadata") or {}
        result.observations.append(
            ObservationCost(
                observation=str(observation["id"]),
                suggestion=str(observation.get("suggestion")),
                instance_id=str(metadata.get("instance_id") or ""),
                failed=bool(observation.get("failed")),
                value=observation_value(observation),
                instance_seconds=number_or_none(metadata.get(keys.INSTANCE_SECONDS)),
                cost_usd=number_or_none(metadata.get(keys.COST_USD)),
                price_source=str(metadata.get(keys.PRICE_SOURCE) or ""),
                cumulative_usd=cumulative,
            )
        )
    for suggestion in open_suggestions:
        seconds, usd = spent_so_far(suggestion.get("metadata") or {})
        result.in_progress.add(seconds, usd)
    return result


def usd(value: float | None) -> str:
    """``$0.1234`` or ``unknown`` (never ``$0`` for an unknown amount)."""
    if value is None:
        return "unknown"
    return f"${value:,.4f}" if value < 100 else f"${value:,.2f}"


def unknown_attempts_note(count: int) -> str:
    """Why the wasted part is unknown, or "" (the page words it the same way)."""
    if not count:
        return ""
    whose = "observation's" if count == 1 else "observations'"
    return f"{count} {whose} earlier attempts have no recorded cost"


def stopping_line(stopping: Mapping[str, Any]) -> str:
    """Early stopping's spend and estimated saving in one line (``stopping`` as JSON), or ""
    when no run was stopped early (`optfleet status` and the demo print it)."""
    if not stopping["stopped"]:
        return ""
    spent, saving = stopping["spent"], stopping["estimated_saving"]
    runs = "run" if stopping["stopped"] == 1 else "runs"
    line = (
        f"stopped early: {stopping['stopped']} {runs} spent {usd(spent['usd'])} "
        f"({_seconds(spent['seconds'])}); estimated saving {usd(saving['usd'])} "
        f"({_seconds(saving['seconds'])}) against the median of "
        f"{stopping['full_length']} full-length runs "
        f"({usd(stopping['median_full_length']['usd'])} each)"
    )
    return f"{line}; unknown: {stopping['note']}" if stopping["note"] else line


def _seconds(value: float | None) -> str:
    return "unknown instance-seconds" if value is None else f"{value:,.0f} instance-seconds"
