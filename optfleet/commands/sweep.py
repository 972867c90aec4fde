"""`optfleet sweep`: list (and with --delete remove) what is still tagged with an experiment.

Meant for after `cdk destroy`: instances, spot requests, EBS volumes, network interfaces and
CloudWatch log groups carrying ``Experiment=<id>``. Deletion order matters: spot requests are
cancelled first (so nothing relaunches), instances terminated and waited for (their volumes and
interfaces detach), then the detached volumes, interfaces and the log groups are deleted.

Exit status: 0 when nothing tagged is left at the end, 1 when something is (listed without
--delete, or not deletable), so scripts can check that an experiment cost nothing more.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from typing import Any

from rich.console import Console
from rich.table import Table

from optfleet.aws_inventory import (
    TAG_KEY,
    TaggedResource,
    make_clients,
    tagged_instances,
    tagged_log_groups,
    tagged_network_interfaces,
    tagged_spot_requests,
    tagged_volumes,
)

HELP = "find and remove resources left by an experiment"
WAIT_ATTEMPTS = 60  # x 2 s: bounded wait for instances to terminate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags: experiment, region, --delete, output format."""
    parser.add_argument("--experiment", required=True, help="experiment id")
    parser.add_argument("--region", help="AWS region (default: the SDK's configuration)")
    parser.add_argument(
        "--delete", action="store_true", help="remove what is found (default: list only)"
    )
    parser.add_argument(
        "--tag-key", default=TAG_KEY, help=f"tag holding the experiment id (default {TAG_KEY})"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def find_leftovers(
    ec2: Any, logs: Any, experiment_id: str, tag_key: str = TAG_KEY
) -> list[TaggedResource]:
    """Everything still tagged with the experiment (terminated instances are not leftovers)."""
    instances = tagged_instances(ec2, experiment_id, tag_key, include_terminated=False)
    found = [
        TaggedResource("instance", i.instance_id, i.state, f"{i.instance_type} {i.lifecycle}")
        for i in instances
    ]
    found += tagged_spot_requests(ec2, experiment_id, [i.instance_id for i in instances], tag_key)
    found += tagged_volumes(ec2, experiment_id, tag_key)
    found += tagged_network_interfaces(ec2, experiment_id, tag_key)
    found += tagged_log_groups(logs, experiment_id, tag_key)
    return found


def delete_leftovers(ec2: Any, logs: Any, leftovers: list[TaggedResource]) -> list[TaggedResource]:
    """Delete ``leftovers`` in dependency order; return them with a note saying what happened."""
    from botocore.exceptions import ClientError, WaiterError

    outcome: dict[tuple[str, str], TaggedResource] = {}

    def record(item: TaggedResource, note: str, state: str | None = None) -> None:
        outcome[(item.kind, item.resource_id)] = replace(item, note=note, state=state or item.state)

    by_kind: dict[str, list[TaggedResource]] = {}
    for item in leftovers:
        by_kind.setdefault(item.kind, []).append(item)

    spot = by_kind.get("spot-request", [])
    if spot:
        ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=[s.resource_id for s in spot])
        for item in spot:
            record(item, "cancelled", "cancelled")

    instances = by_kind.get("instance", [])
    if instances:
        ids = [i.resource_id for i in instances]
        ec2.terminate_instances(InstanceIds=ids)
        try:
            ec2.get_waiter("instance_terminated").wait(
                InstanceIds=ids, WaiterConfig={"Delay": 2, "MaxAttempts": WAIT_ATTEMPTS}
            )
            for item in instances:
                record(item, "terminated", "terminated")
        except WaiterError as exc:
            for item in instances:
                record(item, f"terminate requested, not yet terminated: {exc}")

    # Re-read volumes and interfaces: terminating instances detaches or deletes them.
    for item in by_kind.get("volume", []):
        try:
            ec2.delete_volume(VolumeId=item.resource_id)
            record(item, "deleted", "deleted")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "InvalidVolume.NotFound":
                record(item, "deleted with its instance", "deleted")
            else:
                record(
                    item, f"not deleted: {code}: {exc.response.get('Error', {}).get('Message', '')}"
                )
    for item in by_kind.get("network-interface", []):
        try:
            ec2.delete_network_interface(NetworkInterfaceId=item.resource_id)
            record(item, "deleted", "deleted")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "InvalidNetworkInterfaceID.NotFound":
                record(item, "deleted with its instance", "deleted")
            else:
                record(
                    item, f"not deleted: {code}: {exc.response.get('Error', {}).get('Message', '')}"
                )
    for item in by_kind.get("log-group", []):
        try:
            logs.delete_log_group(logGroupName=item.resource_id)
            record(item, "deleted", "deleted")
        except ClientError as exc:
            record(item, f"not deleted: {exc.response.get('Error', {}).get('Code', '')}")
    return [outcome.get((i.kind, i.resource_id), i) for i in leftovers]


def run(args: argparse.Namespace) -> int:
    """List or delete; exit 0 when nothing tagged remains, 1 otherwise or on an AWS error."""
    try:
        ec2, logs = make_clients(args.region)
        found = find_leftovers(ec2, logs, args.experiment, args.tag_key)
        results = delete_leftovers(ec2, logs, found) if args.delete and found else found
        remaining = (
            find_leftovers(ec2, logs, args.experiment, args.tag_key) if args.delete else found
        )
    except Exception as exc:  # botocore errors: one line, no traceback
        print(f"optfleet sweep: AWS: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(
            json.dumps(
                {
                    "experiment": args.experiment,
                    "found": [asdict(r) for r in results],
                    "remaining": [asdict(r) for r in remaining],
                },
                indent=2,
            )
        )
    else:
        _print(results, args.experiment, args.delete, remaining)
    return 1 if remaining else 0


def _print(
    results: list[TaggedResource],
    experiment_id: str,
    deleting: bool,
    remaining: list[TaggedResource],
) -> None:
    console = Console()
    if not results:
        console.print(f"nothing tagged {TAG_KEY}={experiment_id} is left")
        return
    table = Table(title=f"resources tagged with experiment {experiment_id}")
    for column in ("kind", "id", "state", "note"):
        table.add_column(column)
    for item in results:
        table.add_row(item.kind, item.resource_id, item.state, item.note)
    console.print(table)
    if not deleting:
        console.print(f"{len(results)} resource(s) left; run again with --delete to remove them")
    elif remaining:
        console.print(f"[bold red]{len(remaining)} resource(s) could not be removed yet[/bold red]")
    else:
        console.print("all removed")
