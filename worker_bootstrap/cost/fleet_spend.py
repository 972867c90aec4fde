"""An experiment's estimated spend: its EC2 instances' running time times their prices.

Instances are found by the ``Experiment`` tag (every state, terminated ones included while EC2
still lists them, about an hour). Each runs from ``LaunchTime`` to now, or to the time in its
``StateTransitionReason`` once stopped or terminated; EC2 bills Linux per second with a 60-second
minimum (applied to instances that ended). Used by the agent's dollar cap and by
``optfleet status``; boto3 is imported lazily.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from worker_bootstrap.cost.pricing import Price, PriceBook

TAG_KEY = "Experiment"
MINIMUM_BILLED_S = 60.0
ENDED_STATES = ("stopping", "stopped", "shutting-down", "terminated")
# "User initiated (2026-11-30 12:00:00 GMT)"; moto writes UTC.
_REASON_TIME = re.compile(r"\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (?:GMT|UTC)\)")


@dataclass
class InstanceSpend:
    """One instance's running time and cost (``usd`` None when its price is unknown)."""

    instance_id: str
    instance_type: str
    lifecycle: str
    availability_zone: str
    state: str
    launched_at: float
    ended_at: Optional[float]
    seconds: float
    price: Price
    usd: Optional[float]
    end_estimated: bool = False  # ended, but EC2 gave no time: counted until now (upper bound)


@dataclass
class FleetSpend:
    """The fleet's total: seconds, USD (None when any instance's price is unknown)."""

    instances: List[InstanceSpend] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(i.seconds for i in self.instances)

    @property
    def usd(self) -> Optional[float]:
        total = 0.0
        for instance in self.instances:
            if instance.usd is None:
                return None
            total += instance.usd
        return total

    @property
    def usd_per_hour(self) -> Optional[float]:
        """What the instances still running cost per hour now."""
        total = 0.0
        for instance in self.instances:
            if instance.ended_at is None:
                if instance.price.usd_per_hour is None:
                    return None
                total += instance.price.usd_per_hour
        return total

    def unknown(self) -> List[str]:
        """``instance-id: reason`` for every instance whose price is unknown."""
        return [f"{i.instance_id}: {i.price.error}" for i in self.instances if i.usd is None]


def ended_at(state: str, reason: str) -> Optional[float]:
    """When a stopped/terminated instance stopped running, from its StateTransitionReason."""
    if state not in ENDED_STATES:
        return None
    match = _REASON_TIME.search(reason or "")
    if match is None:
        return None
    when = dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
    return when.replace(tzinfo=dt.timezone.utc).timestamp()


def _epoch(value: Any) -> float:
    if isinstance(value, dt.datetime):
        when = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return when.timestamp()
    return float(value)


def instance_spend(
    item: Dict[str, Any],
    prices: PriceBook,
    now: float,
    region: str,
    minimum_billed_s: float = MINIMUM_BILLED_S,
) -> InstanceSpend:
    """Spend of one ``DescribeInstances`` instance record."""
    state = str(item.get("State", {}).get("Name", ""))
    launched = _epoch(item["LaunchTime"])
    ended = ended_at(state, str(item.get("StateTransitionReason") or ""))
    estimated = state in ENDED_STATES and ended is None
    # The reason's time is truncated to the second: counting to the end of that second keeps the
    # spend from dropping below what a check saw while the instance ran (the cap compared that).
    end = now if ended is None else min(now, ended + 1.0)
    if state == "pending":
        end = launched  # nothing billed before it runs
    seconds = max(0.0, end - launched)
    if ended is not None:
        # Billed at least a minute; applied once it ended, so a young running fleet's estimate
        # grows with its time instead of jumping a minute ahead.
        seconds = max(seconds, minimum_billed_s)
    zone = str(item.get("Placement", {}).get("AvailabilityZone", ""))
    lifecycle = str(item.get("InstanceLifecycle") or "on-demand")
    instance_type = str(item.get("InstanceType", ""))
    price = prices.price(instance_type, lifecycle, zone, region)
    return InstanceSpend(
        instance_id=str(item["InstanceId"]),
        instance_type=instance_type,
        lifecycle=lifecycle,
        availability_zone=zone,
        state=state,
        launched_at=launched,
        ended_at=ended if ended is not None else (now if estimated else None),
        seconds=seconds,
        price=price,
        usd=price.cost_usd(seconds),
        end_estimated=estimated,
    )


def experiment_instances(ec2: Any, experiment_id: str, tag_key: str = TAG_KEY) -> List[Any]:
    """Raw ``DescribeInstances`` records of every instance tagged with the experiment."""
    found: List[Any] = []
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": f"tag:{tag_key}", "Values": [experiment_id]}]
    )
    for page in pages:
        for reservation in page.get("Reservations", []):
            found.extend(reservation.get("Instances", []))
    return found


def fleet_spend(
    ec2: Any,
    experiment_id: str,
    prices: PriceBook,
    now: float,
    region: str,
    tag_key: str = TAG_KEY,
    minimum_billed_s: float = MINIMUM_BILLED_S,
) -> FleetSpend:
    """The experiment's spend from launch to ``now`` (epoch seconds) over all its instances."""
    records = experiment_instances(ec2, experiment_id, tag_key)
    spends = [instance_spend(item, prices, now, region, minimum_billed_s) for item in records]
    return FleetSpend(sorted(spends, key=lambda s: s.instance_id))
