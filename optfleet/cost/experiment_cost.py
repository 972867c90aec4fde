"""An experiment's spend and where it went: evaluating, idle or booting, wasted.

Pure functions over plain data (the fleet's EC2 spend, observations, open suggestions), shared by
`optfleet status` and the demo. The fleet total is EC2's view (launch to now or termination,
times each instance's price); the split comes from what the agents stamped:

- evaluating: the attempt that produced each successful observation, plus the running attempts of
  open suggestions;
- wasted: failed observations (every attempt), and earlier attempts of successful ones
  (interrupted, crashed or taken over: their checkpoints may have saved part of that work, so
  this is an upper bound);
- idle/booting: the rest of the fleet's time (boot, waiting, draining, and duplicate work whose
  result was dropped after its last lease renewal).

USD follows the same split; an unknown price makes that part unknown (None), never 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from optfleet.observations import observation_value
from worker_bootstrap.adoption import oldest_first
from worker_bootstrap.cost import keys
from worker_bootstrap.cost.attempt_spend import number_or_none as _number
from worker_bootstrap.cost.attempt_spend import spent_so_far
from worker_bootstrap.cost.cap import parse_cap
from worker_bootstrap.cost.fleet_spend import FleetSpend


@dataclass
class Bucket:
    """Instance-seconds and USD (None when some part's price is unknown)."""

    seconds: float = 0.0
    usd: float | None = 0.0

    def add(self, seconds: float, usd: float | None) -> None:
        self.seconds += seconds
        self.usd = None if self.usd is None or usd is None else self.usd + usd

    def as_json(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 1),
            "usd": None if self.usd is None else round(self.usd, 6),
        }


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

    fleet: Bucket | None  # None when EC2 could not be read
    evaluating: Bucket = field(default_factory=Bucket)
    in_progress: Bucket = field(default_factory=Bucket)
    failed: Bucket = field(default_factory=Bucket)
    interrupted: Bucket = field(default_factory=Bucket)
    observations: list[ObservationCost] = field(default_factory=list)
    fleet_usd_per_hour: float | None = None
    unknown_prices: list[str] = field(default_factory=list)
    cap_usd: float | None = None
    budget_reached: bool = False  # the observation budget came first: the cap did not stop it
    control_plane: Bucket | None = None  # its EC2 instances, when asked for (shared by experiments)

    @property
    def wasted(self) -> Bucket:
        total = Bucket()
        total.add(self.failed.seconds, self.failed.usd)
        total.add(self.interrupted.seconds, self.interrupted.usd)
        return total

    @property
    def idle_booting(self) -> Bucket | None:
        """Fleet time not spent on any attempt (never below 0: EC2 forgets old instances)."""
        if self.fleet is None:
            return None
        used = Bucket()
        for part in (self.evaluating, self.wasted):
            used.add(part.seconds, part.usd)
        usd = None
        if self.fleet.usd is not None and used.usd is not None:
            usd = max(0.0, self.fleet.usd - used.usd)
        return Bucket(max(0.0, self.fleet.seconds - used.seconds), usd)

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
            },
            "control_plane": None if self.control_plane is None else self.control_plane.as_json(),
            "max_cost_usd": self.cap_usd,
            "cap_reached": self.cap_reached,
            "stopped_by_cap": self.stopped_by_cap,
            "unknown_prices": self.unknown_prices,
            "observations": [asdict(o) for o in self.observations],
        }


def _attempts(metadata: dict[str, Any]) -> tuple[Bucket, Bucket]:
    """(this attempt, earlier attempts) of an observation, from the agent's keys."""
    total_s = _number(metadata.get(keys.INSTANCE_SECONDS)) or 0.0
    earlier_s = _number(metadata.get(keys.EARLIER_ATTEMPTS_SECONDS)) or 0.0
    total_usd = _number(metadata.get(keys.COST_USD))
    earlier_usd = _number(metadata.get(keys.EARLIER_ATTEMPTS_COST_USD))
    if earlier_usd is None and earlier_s == 0:
        earlier_usd = 0.0
    own_usd = None if total_usd is None or earlier_usd is None else total_usd - earlier_usd
    return Bucket(total_s - earlier_s, own_usd), Bucket(earlier_s, earlier_usd)


def experiment_cost(
    fleet: FleetSpend | None,
    observations: list[dict[str, Any]],
    open_suggestions: list[dict[str, Any]],
    experiment: dict[str, Any] | None = None,
) -> ExperimentCost:
    """The split for one experiment; ``fleet`` None when EC2 could not be read."""
    result = ExperimentCost(
        fleet=None if fleet is None else Bucket(fleet.seconds, fleet.usd),
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
    cumulative: float | None = 0.0
    for observation in sorted(observations, key=oldest_first):
        metadata = observation.get("metadata") or {}
        own, earlier = _attempts(metadata)
        if observation.get("failed"):
            result.failed.add(own.seconds + earlier.seconds, _sum(own.usd, earlier.usd))
        else:
            result.evaluating.add(own.seconds, own.usd)
            result.interrupted.add(earlier.seconds, earlier.usd)
        cost = _number(metadata.get(keys.COST_USD))
        cumulative = None if cumulative is None or cost is None else cumulative + cost
        result.observations.append(
            ObservationCost(
                observation=str(observation["id"]),
                suggestion=str(observation.get("suggestion")),
                instance_id=str(metadata.get("instance_id") or ""),
                failed=bool(observation.get("failed")),
                value=observation_value(observation),
                instance_seconds=_number(metadata.get(keys.INSTANCE_SECONDS)),
                cost_usd=cost,
                price_source=str(metadata.get(keys.PRICE_SOURCE) or ""),
                cumulative_usd=cumulative,
            )
        )
    for suggestion in open_suggestions:
        seconds, usd = spent_so_far(suggestion.get("metadata") or {})
        result.in_progress.add(seconds, usd)
    result.evaluating.add(result.in_progress.seconds, result.in_progress.usd)
    return result


def _sum(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def usd(value: float | None) -> str:
    """``$0.1234`` or ``unknown`` (never ``$0`` for an unknown amount)."""
    if value is None:
        return "unknown"
    return f"${value:,.4f}" if value < 100 else f"${value:,.2f}"
