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
from optfleet.fleet_status import FleetStatus, join_fleet_status

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
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    """Print the joined table; 1 with a clear message when AWS or the API cannot be read."""
    try:
        client = client_from_args(args.api_url, args.api_token)
        try:
            open_suggestions = client.open_suggestions(args.experiment)
            observations = client.observations(args.experiment)
        finally:
            client.close()
        ec2, _logs = make_clients(args.region)
        instances = tagged_instances(ec2, args.experiment, args.tag_key)
    except ApiError as exc:
        print(f"optfleet status: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # botocore errors: report them in one line, no traceback
        print(f"optfleet status: AWS: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    status = join_fleet_status(instances, open_suggestions, observations)
    if args.json:
        print(
            json.dumps({"experiment": args.experiment, **status.as_json()}, indent=2, default=str)
        )
    else:
        print_status(status, args.experiment)
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
