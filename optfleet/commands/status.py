"""`optfleet status`: EC2 instances tagged with an experiment joined with its suggestions."""

from __future__ import annotations

import argparse
import json
import sys
import time

from rich.console import Console
from rich.table import Table

from optfleet.api_client import ApiError, client_from_args
from optfleet.aws_inventory import TAG_KEY, make_clients, tagged_instances
from optfleet.commands.experiment import add_api_arguments
from optfleet.cost.experiment_cost import (
    ExperimentCost,
    experiment_cost,
    stopping_line,
    unknown_attempts_note,
    usd,
)
from optfleet.cost.prices import operator_price_book
from optfleet.fleet_status import FleetStatus, join_fleet_status
from suggestion_server.domain.cost_split import Spend
from worker_bootstrap.cost.fleet_spend import fleet_spend

HELP = "instances joined with their suggestions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags: experiment, API connection, AWS region, output format."""
    parser.add_argument("--experiment", required=True, help="experiment id")
    add_api_arguments(parser)
    parser.add_argument("--region", help="AWS region (default: the SDK's configuration)")
    parser.add_argument(
        "--tag-key",
        default=TAG_KEY,
        help=f"instance tag holding the experiment id (default {TAG_KEY})",
    )
    parser.add_argument(
        "--control-stack",
        metavar="NAME",
        help="also show the EC2 spend of this control-plane stack (e.g. optfleet-control)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    """Print the joined table; 1 with a clear message when AWS or the API cannot be read."""
    try:
        client = client_from_args(args.api_url, args.api_token)
        try:
            experiment = client.experiment(args.experiment)
            open_suggestions = client.open_suggestions(args.experiment)
            observations = client.observations(args.experiment)
        finally:
            client.close()
        ec2, _logs = make_clients(args.region)
        instances = tagged_instances(ec2, args.experiment, args.tag_key)
        prices = operator_price_book()
        now = time.time()
        spend = fleet_spend(ec2, args.experiment, prices, now, ec2.meta.region_name, args.tag_key)
        control = None
        if args.control_stack:
            # The control plane's instances carry Stack=<name> (its stack tags them all).
            control = fleet_spend(
                ec2, args.control_stack, prices, now, ec2.meta.region_name, "Stack"
            )
    except ApiError as exc:
        print(f"optfleet status: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # botocore errors: report them in one line, no traceback
        print(f"optfleet status: AWS: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    status = join_fleet_status(instances, open_suggestions, observations)
    cost = experiment_cost(spend, observations, open_suggestions, experiment)
    if control is not None:
        cost.control_plane = Spend(control.seconds, control.usd)
    if args.json:
        body = {"experiment": args.experiment, **status.as_json(), "cost": cost.as_json()}
        print(json.dumps(body, indent=2, default=str))
    else:
        print_status(status, args.experiment)
        print_cost(Console(), cost)
    return 0


def _since(timestamp: int | None) -> str:
    if timestamp is None:
        return "-"
    minutes = max(0, int(time.time()) - timestamp) // 60
    return f"{time.strftime('%H:%M:%S', time.localtime(timestamp))} ({minutes} min)"


def print_status(status: FleetStatus, experiment_id: str) -> None:
    """Render the status as a rich table followed by the suggestions needing attention."""
    console = Console()
    table = Table(title=f"experiment {experiment_id}: instances")
    for column in (
        "instance",
        "state",
        "type",
        "lifecycle",
        "zone",
        "suggestion",
        "running since",
        "done",
        "failed",
        "last failure",
        "flags",
    ):
        table.add_column(column)
    for row in status.rows:
        flags = ", ".join(row.flags)
        table.add_row(
            row.instance_id,
            row.state,
            row.instance_type,
            row.lifecycle,
            row.availability_zone,
            ", ".join(row.current_suggestions) or "-",
            _since(row.running_since),
            str(row.done),
            str(row.failed),
            (row.last_failure_reason or "")[:60],
            f"[bold red]{flags}[/bold red]" if flags else "",
        )
    console.print(table)
    for suggestion in status.orphaned_suggestions:
        instance = (suggestion.get("metadata") or {}).get("instance_id")
        console.print(
            f"[bold red]orphaned[/bold red] suggestion {suggestion['id']}: "
            f"instance {instance} is not "
            "running; a live agent of the experiment adopts it"
        )
    for suggestion in status.unassigned_suggestions:
        console.print(
            f"[yellow]unassigned[/yellow] suggestion {suggestion['id']}: "
            "no instance_id in its metadata"
        )
    if status.idle_instances:
        console.print(
            "[yellow]idle[/yellow] instances (running, no open suggestion): "
            + ", ".join(status.idle_instances)
        )


def print_cost(console: Console, cost: ExperimentCost) -> None:
    """The spend, its split and the cap, under the status table."""
    fleet = cost.fleet
    if fleet is None:
        console.print("cost: unknown (EC2 could not be read)")
        return
    idle = cost.idle_booting
    console.print(
        f"cost (estimate): {usd(fleet.usd)} for {fleet.seconds / 3600:.2f} instance-hours, "
        f"now {usd(cost.fleet_usd_per_hour)}/h"
    )
    console.print(
        f"  evaluating {usd(cost.evaluating.usd)} (in progress {usd(cost.in_progress.usd)}), "
        f"idle/booting {usd(idle.usd if idle else None)}, wasted {usd(cost.wasted.usd)} "
        f"(failed {usd(cost.failed.usd)}, interrupted {usd(cost.interrupted.usd)})"
    )
    if note := unknown_attempts_note(cost.split.unknown_attempts):
        console.print(f"  [yellow]interrupted unknown[/yellow]: {note}")
    if line := stopping_line(cost.stopping.as_json()):
        console.print(f"  {line}")
    if cost.control_plane is not None:
        console.print(
            f"  control plane (its EC2 instances only, shared by its experiments): "
            f"{usd(cost.control_plane.usd)}"
        )
    for problem in cost.unknown_prices:
        console.print(f"  [yellow]price unknown[/yellow] {problem}")
    if cost.cap_usd is None:
        return
    if cost.cap_reached and not cost.stopped_by_cap:
        console.print(
            f"cost cap {usd(cost.cap_usd)}: reached after the observation budget stopped the "
            "experiment"
        )
    elif cost.cap_reached:
        console.print(
            f"[bold red]cost cap {usd(cost.cap_usd)} reached[/bold red]: the cap stopped the "
            "experiment; agents create no new suggestions, running evaluations finish and the "
            "fleet drains (when_done)"
        )
    else:
        console.print(f"cost cap {usd(cost.cap_usd)}: {usd(fleet.usd)} spent so far")
