"""The fleet-spend extension's JSON shapes (docs/api.md, "Fleet spend").

An optfleet extension, not SigOpt wire: the agents of one experiment share one estimate of the
fleet's spend instead of each paging EC2's DescribeInstances before every suggestion.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

InstanceId = Annotated[str, Field(min_length=1, max_length=64)]
# Finite, non-negative numbers: a spend is never negative and JSON has no infinity.
Dollars = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class FleetSpendClaimIn(BaseModel):
    """``POST /experiments/{id}/fleet_spend/claims``: may this instance refresh the figure?"""

    model_config = ConfigDict(strict=True, extra="forbid")
    instance_id: InstanceId


class FleetSpendReportIn(BaseModel):
    """``PUT /experiments/{id}/fleet_spend``: a figure measured from EC2 by ``measured_by``.

    ``usd`` is null when some instance's price is unknown; ``usd_per_s`` is what the running
    instances add per second, so readers can extrapolate between refreshes."""

    model_config = ConfigDict(strict=False, extra="forbid")
    usd: Dollars | None
    usd_per_s: Dollars
    seconds: Seconds
    instances: Annotated[int, Field(ge=0)]
    measured_at: Seconds
    measured_by: InstanceId


class FleetSpendOut(BaseModel):
    """The shared figure; ``measured_at`` null until an agent has reported one."""

    object: str = "fleet_spend"
    experiment: str
    usd: float | None
    usd_per_s: float
    seconds: float
    instances: int
    measured_at: float | None
    measured_by: str | None
    refresh_after_s: float


class FleetSpendClaimOut(BaseModel):
    """Whether the claim was granted (until ``claimed_until``), with the current figure."""

    object: str = "fleet_spend_claim"
    granted: bool
    claimed_by: str | None
    claimed_until: float
    fleet_spend: FleetSpendOut
