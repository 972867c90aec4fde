"""The demo's cost: simulated prices served by the pricing emulator, and the cost table.

The demo has no AWS account, so its agents ask the pricing emulator (Price List ``GetProducts``,
EC2 ``DescribeSpotPriceHistory``) exactly as they ask AWS on a real fleet, and its simulated
instances are listed by the emulator's ``DescribeInstances``. The prices are SIMULATED: about 400
times AWS's list prices, so that a one-minute demo costs a few dollars instead of fractions of a
cent. Every output that shows them says so.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.table import Table

from emulators.pricing import PricingEmulator, SimulatedInstance, SimulatedPrice
from optfleet.cost.experiment_cost import (
    experiment_cost,
    stopping_line,
    unknown_attempts_note,
    usd,
)
from worker_bootstrap.cost.fleet_spend import fleet_spend
from worker_bootstrap.cost.pricing import PriceBook

REGION = "us-east-1"
PRICES_NOTE = "prices are simulated (pricing emulator, not AWS)"
# Simulated USD per hour (on-demand, spot) for the demo's instance types.
SIMULATED_PRICES = (
    SimulatedPrice("c7i.large", on_demand_usd=36.0, spot_usd=14.4),
    SimulatedPrice("m7i.large", on_demand_usd=40.0, spot_usd=16.0),
    SimulatedPrice("c6i.large", on_demand_usd=34.0, spot_usd=12.6),
    SimulatedPrice("m6i.large", on_demand_usd=38.0, spot_usd=15.2),
    SimulatedPrice("c7i.xlarge", on_demand_usd=72.0, spot_usd=28.8),
    SimulatedPrice("m7i.xlarge", on_demand_usd=80.0, spot_usd=32.0),
)


class DemoCost:
    """Owns the emulator: registers instances, points agents at it, sums up the spend."""

    def __init__(self) -> None:
        self.emulator = PricingEmulator(list(SIMULATED_PRICES))

    def start(self) -> None:
        self.emulator.start()

    def stop(self) -> None:
        self.emulator.stop()

    def agent_env(self) -> dict[str, str]:
        """Process environment that sends the agents' boto3 pricing and EC2 calls here."""
        return {**self.emulator.env(), "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}

    def launched(
        self, instance_id: str, instance_type: str, zone: str, lifecycle: str, experiment_id: str
    ) -> None:
        """An instance started now (what EC2 would list with the Experiment tag)."""
        self.emulator.add_instance(
            SimulatedInstance(
                instance_id=instance_id,
                instance_type=instance_type,
                availability_zone=zone,
                lifecycle=lifecycle,
                launch_time=time.time(),
                tags={"Experiment": experiment_id},
            )
        )

    def ended(self, instance_id: str) -> None:
        """The instance stopped running (terminated, or drained after its agent finished)."""
        if instance_id in self.emulator.instances:
            self.emulator.end_instance(instance_id)

    def summary(
        self,
        experiment_id: str,
        observations: list[dict[str, Any]],
        open_suggestions: list[dict[str, Any]],
        experiment: dict[str, Any],
    ) -> dict[str, Any]:
        """The ``cost`` part of the demo summary (JSON-ready)."""
        import boto3

        env = self.emulator.env()

        def clients(service: str, region: str | None) -> Any:
            make: Any = boto3.client
            return make(
                service,
                region_name=REGION,
                endpoint_url=self.emulator.url,
                aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            )

        prices = PriceBook(None, clients=clients)
        # Simulated instances live seconds: EC2's one-minute minimum would swamp their cost.
        spend = fleet_spend(
            clients("ec2", REGION), experiment_id, prices, time.time(), REGION, minimum_billed_s=0
        )
        cost = experiment_cost(spend, observations, open_suggestions, experiment).as_json()
        cost["prices"] = PRICES_NOTE
        return cost


def print_cost_table(console: Console, cost: dict[str, Any]) -> None:
    """Cost per observation, the total and its split (the demo's closing table)."""
    table = Table(title=f"cost per observation ({cost['prices']})")
    for column in ("sugg", "instance", "price", "secs", "cost", "sum", "value"):
        left = column in ("instance", "price")
        table.add_column(column, justify="left" if left else "right", no_wrap=left)
    for row in cost["observations"]:
        seconds = row["instance_seconds"]
        value = "failed" if row["failed"] else f"{row['value']:.4f}"
        table.add_row(
            row["suggestion"],
            row["instance_id"],
            row["price_source"] or "-",
            "-" if seconds is None else f"{seconds:.1f}",
            usd(row["cost_usd"]),
            usd(row["cumulative_usd"]),
            value,
        )
    console.print(table)
    fleet = cost["fleet"] or {}
    idle = cost["idle_booting"] or {}
    wasted = cost["wasted"]
    console.print(
        f"fleet total {usd(fleet.get('usd'))} ({fleet.get('seconds', 0):.0f} instance-seconds): "
        f"evaluating {usd(cost['evaluating']['usd'])}, idle/booting {usd(idle.get('usd'))}, "
        f"wasted {usd(wasted['usd'])} (failed {usd(wasted['failed']['usd'])}, "
        f"interrupted {usd(wasted['interrupted']['usd'])}); {cost['prices']}, per second without "
        "EC2's one-minute minimum"
    )
    if note := unknown_attempts_note(wasted["unknown_attempts"]):
        console.print(f"interrupted unknown: {note}")
    if line := stopping_line(cost["stopping"]):
        console.print(f"{line}; {cost['prices']}")
    if cost["max_cost_usd"] is not None:
        state = "not reached"
        if cost["cap_reached"]:
            state = "reached: the cap stopped the fleet" if cost["stopped_by_cap"] else "reached"
        console.print(f"cost cap {usd(cost['max_cost_usd'])} {state}")
