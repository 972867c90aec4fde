"""The dollar cap: before each new suggestion, is the experiment's estimated spend below it?

The cap is ``max_cost_usd`` in the experiment's metadata (set by ``optfleet experiment create``;
plain SigOpt servers store it like any metadata) and/or the fleet setting
``OPTFLEET_MAX_COST_USD``; with both, the lower one holds. Checking on the agent, not the
server, keeps the cap working against any SigOpt-compatible server: once the estimate reaches the
cap no agent creates a suggestion, running evaluations finish and report, and each agent applies
``when_done`` as at the observation budget.

A cap whose spend cannot be estimated (no EC2 permission, an unknown price) stops the agent with
an error rather than letting it spend unchecked; it does not drain the fleet.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from worker_bootstrap.cost.fleet_spend import FleetSpend, fleet_spend
from worker_bootstrap.cost.keys import MAX_COST_USD
from worker_bootstrap.cost.pricing import PriceBook


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

    @property
    def reached(self) -> bool:
        return self.spend_usd >= self.cap_usd


class CostCap:
    """Estimates the experiment's spend from EC2 when a cap is set."""

    def __init__(
        self,
        experiment_id: str,
        region: Optional[str],
        prices: PriceBook,
        setting: Optional[float],
        ec2: Optional[Callable[[], Any]] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.experiment_id = experiment_id
        self.region = region
        self.prices = prices
        self.setting = setting
        self._ec2 = ec2
        self._cached: Any = None
        self.clock = clock

    def _client(self) -> Any:
        if self._ec2 is not None:
            return self._ec2()
        if self._cached is None:
            from worker_bootstrap.aws import client

            # Made once: building a boto3 client costs more than the call it makes.
            self._cached = client("ec2", self.region)
        return self._cached

    def check(self, experiment: Dict[str, Any]) -> Optional[CapCheck]:
        """None without a cap; else the spend against it (:class:`CostUnknown` if not known)."""
        try:
            cap = effective_cap(experiment, self.setting)
        except ValueError as exc:
            raise CostUnknown(str(exc)) from None
        if cap is None:
            return None
        try:
            spend: FleetSpend = fleet_spend(
                self._client(), self.experiment_id, self.prices, self.clock(), self.region or ""
            )
        except Exception as exc:
            raise CostUnknown(
                f"{MAX_COST_USD}={cap:g} is set but the spend cannot be estimated: "
                f"ec2:DescribeInstances failed: {type(exc).__name__}: {exc}"
            ) from None
        usd = spend.usd
        if usd is None:
            raise CostUnknown(
                f"{MAX_COST_USD}={cap:g} is set but the spend cannot be estimated: "
                + "; ".join(spend.unknown())[:400]
            )
        return CapCheck(cap_usd=cap, spend_usd=usd, instances=len(spend.instances))
