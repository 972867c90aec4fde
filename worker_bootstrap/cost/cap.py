"""The dollar cap: before each new suggestion, is the experiment's estimated spend below it?

The cap is ``max_cost_usd`` in the experiment's metadata (set by ``optfleet experiment create``;
plain SigOpt servers store it like any metadata) and/or the fleet setting
``OPTFLEET_MAX_COST_USD``; with both, the lower one holds. Checking on the agent, not the
server, keeps the cap working against any SigOpt-compatible server: once the estimate reaches the
cap no agent creates a suggestion, running evaluations finish and report, and each agent applies
``when_done`` as at the observation budget.

The spend is one figure per experiment (``shared_spend.py``): measured from EC2 by one agent
at a time and shared through the server, so the EC2 calls do not grow with the fleet. A cap
whose spend cannot be estimated (no EC2 permission, an unknown price) stops the agent with an
error rather than letting it spend unchecked; it does not drain the fleet. A transient EC2
failure does not: the last figure holds (with its age), and before the first one the check
waits with a bounded backoff.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from worker_bootstrap.cost.fleet_spend import FleetSpend, fleet_spend
from worker_bootstrap.cost.keys import MAX_COST_USD
from worker_bootstrap.cost.pricing import PriceBook
from worker_bootstrap.cost.shared_spend import (
    RETRY_MIN_S,
    SharedFleetSpend,
    SpendFigure,
    SpendUnavailable,
)
from worker_bootstrap.logs import EventLog

Request = Callable[[str, str, Optional[Dict[str, Any]]], Dict[str, Any]]


class CostUnknown(Exception):
    """A cap is set but the spend cannot be estimated; the message says why."""


def parse_cap(value: Any, where: str) -> Optional[float]:
    """A positive finite number of dollars, None for absent; ValueError naming ``where``."""
    if value is None or value == "":
        return None
    try:
        cap = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}={value!r}: expected a number of US dollars") from None
    if not math.isfinite(cap) or cap <= 0:
        raise ValueError(f"{where}={value!r}: expected a positive number of US dollars")
    return cap


def effective_cap(experiment: Dict[str, Any], setting: Optional[float]) -> Optional[float]:
    """The cap that holds: the lower of the experiment's metadata and the fleet setting."""
    metadata = experiment.get("metadata") or {}
    from_experiment = parse_cap(metadata.get(MAX_COST_USD), f"experiment metadata {MAX_COST_USD}")
    caps = [cap for cap in (from_experiment, setting) if cap is not None]
    return min(caps) if caps else None


@dataclass
class CapCheck:
    """One check's result, logged by the agent."""

    cap_usd: float
    spend_usd: float
    instances: int
    age_s: float = 0.0  # how old the measured figure is (extrapolated since)
    source: str = "own"  # "shared": measured by another agent, read from the server

    @property
    def reached(self) -> bool:
        return self.spend_usd >= self.cap_usd


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


class CostCap:
    """Checks the experiment's estimated spend against the cap, when one is set."""

    def __init__(
        self,
        experiment_id: str,
        region: Optional[str],
        prices: PriceBook,
        setting: Optional[float],
        ec2: Optional[Callable[[], Any]] = None,
        clock: Callable[[], float] = time.time,
        instance_id: str = "",
        request: Optional[Request] = None,
        wait: Optional[Callable[[float], bool]] = None,
    ) -> None:
        """``request`` (the agent's API call) shares the figure through the server; ``wait``
        sleeps before the first figure is known and returns True when the agent must stop."""
        self.experiment_id = experiment_id
        self.region = region
        self.prices = prices
        self.setting = setting
        self._ec2 = ec2
        self._cached: Any = None
        self.clock = clock
        self._wait = wait or _sleep
        self.spend = SharedFleetSpend(
            experiment_id, instance_id or "unknown", self._measure, request, clock=clock
        )

    def _client(self) -> Any:
        if self._ec2 is not None:
            return self._ec2()
        if self._cached is None:
            from worker_bootstrap.aws import client

            # Made once: building a boto3 client costs more than the call it makes.
            self._cached = client("ec2", self.region)
        return self._cached

    def _measure(self) -> FleetSpend:
        return fleet_spend(
            self._client(), self.experiment_id, self.prices, self.clock(), self.region or ""
        )

    def _figure(self, cap: float) -> SpendFigure:
        while True:
            try:
                figure = self.spend.current()
            except SpendUnavailable as exc:
                raise CostUnknown(
                    f"{MAX_COST_USD}={cap:g} is set but the spend cannot be estimated: "
                    f"ec2:DescribeInstances failed: {exc}"
                ) from None
            if figure is not None:
                return figure
            if self._wait(RETRY_MIN_S):
                raise CostUnknown(f"{MAX_COST_USD}={cap:g}: stopped before the spend was known")

    def check(self, experiment: Dict[str, Any]) -> Optional[CapCheck]:
        """None without a cap; else the spend against it (:class:`CostUnknown` if not known)."""
        try:
            cap = effective_cap(experiment, self.setting)
        except ValueError as exc:
            raise CostUnknown(str(exc)) from None
        if cap is None:
            return None
        figure = self._figure(cap)
        now = self.clock()
        usd = figure.usd_at(now)
        if usd is None:
            unknown = "some instance's price is unknown"
            if figure.source == "own" and self.spend.last_spend is not None:
                unknown = "; ".join(self.spend.last_spend.unknown())[:400]
            raise CostUnknown(
                f"{MAX_COST_USD}={cap:g} is set but the spend cannot be estimated: {unknown}"
            )
        return CapCheck(
            cap_usd=cap,
            spend_usd=usd,
            instances=figure.instances,
            age_s=figure.age(now),
            source=figure.source,
        )


def cap_reached(cap: CostCap, experiment: Dict[str, Any], log: EventLog) -> bool:
    """True once the estimated spend reaches the dollar cap (docs/infra.md, Cost); each check is
    logged. A set cap whose spend is unknown raises ``AwsError`` (the agent exits with code 3)."""
    from worker_bootstrap.aws import AwsError

    try:
        check = cap.check(experiment)
    except CostUnknown as exc:
        log.event("cost_cap_unknown", error=str(exc))
        raise AwsError(str(exc)) from None
    if check is None:
        return False
    log.event(
        "cost_checked",
        spend_usd=round(check.spend_usd, 6),
        cap_usd=check.cap_usd,
        instances=check.instances,
        reached=int(check.reached),
        spend_age_s=round(check.age_s, 1),
        spend_source=check.source,
    )
    return check.reached
