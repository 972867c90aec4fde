"""Find the AWS resources tagged with an experiment (boto3), for `optfleet status` and `sweep`.

The fleet stack tags everything it makes with ``Experiment=<id>`` (instances, volumes, network
interfaces, the log group). boto3 is imported when a function runs, so commands that never touch
AWS do not pay for it. The endpoint follows the SDK's conventions (``AWS_ENDPOINT_URL`` works, which
is how the tests point it at moto's server mode).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

TAG_KEY = "Experiment"
LIVE_INSTANCE_STATES = ("pending", "running", "stopping", "stopped", "shutting-down")


@dataclass(frozen=True)
class Instance:
    """One EC2 instance tagged with the experiment."""

    instance_id: str
    state: str
    instance_type: str
    lifecycle: str
    availability_zone: str
    launch_time: dt.datetime | None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TaggedResource:
    """A resource found by `sweep`: its kind, id, state and a short note."""

    kind: str
    resource_id: str
    state: str
    note: str = ""


def make_clients(region: str | None) -> tuple[Any, Any]:
    """Return (ec2, logs) boto3 clients for ``region`` (None: the SDK's default chain)."""
    import boto3
    from botocore.config import Config

    # Every request gets a timeout and a bounded number of retries.
    config = Config(
        connect_timeout=5, read_timeout=20, retries={"max_attempts": 4, "mode": "standard"}
    )
    session = boto3.session.Session(region_name=region)
    if session.region_name is None:
        raise ValueError("--region: no AWS region given and none configured (set AWS_REGION)")
    return session.client("ec2", config=config), session.client("logs", config=config)


def _tag_filter(experiment_id: str, tag_key: str) -> dict[str, Any]:
    return {"Name": f"tag:{tag_key}", "Values": [experiment_id]}


def _tags(items: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in items or []}


def tagged_instances(
    ec2: Any, experiment_id: str, tag_key: str = TAG_KEY, include_terminated: bool = True
) -> list[Instance]:
    """Every instance tagged with the experiment (terminated ones too unless told otherwise)."""
    filters = [_tag_filter(experiment_id, tag_key)]
    if not include_terminated:
        filters.append({"Name": "instance-state-name", "Values": list(LIVE_INSTANCE_STATES)})
    found: list[Instance] = []
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
        for reservation in page["Reservations"]:
            for item in reservation["Instances"]:
                found.append(
                    Instance(
                        instance_id=item["InstanceId"],
                        state=item["State"]["Name"],
                        instance_type=item.get("InstanceType", ""),
                        lifecycle=item.get("InstanceLifecycle", "on-demand"),
                        availability_zone=item.get("Placement", {}).get("AvailabilityZone", ""),
                        launch_time=item.get("LaunchTime"),
                        tags=_tags(item.get("Tags")),
                    )
                )
    return sorted(found, key=lambda i: i.instance_id)


def tagged_volumes(ec2: Any, experiment_id: str, tag_key: str = TAG_KEY) -> list[TaggedResource]:
    """EBS volumes tagged with the experiment."""
    found = []
    for page in ec2.get_paginator("describe_volumes").paginate(
        Filters=[_tag_filter(experiment_id, tag_key)]
    ):
        for volume in page["Volumes"]:
            attached = ", ".join(a["InstanceId"] for a in volume.get("Attachments", []))
            note = f"attached to {attached}" if attached else ""
            found.append(TaggedResource("volume", volume["VolumeId"], volume["State"], note))
    return found


def tagged_network_interfaces(
    ec2: Any, experiment_id: str, tag_key: str = TAG_KEY
) -> list[TaggedResource]:
    """Network interfaces tagged with the experiment."""
    found = []
    paginator = ec2.get_paginator("describe_network_interfaces")
    for page in paginator.paginate(Filters=[_tag_filter(experiment_id, tag_key)]):
        for eni in page["NetworkInterfaces"]:
            instance = (eni.get("Attachment") or {}).get("InstanceId")
            note = f"attached to {instance}" if instance else ""
            found.append(
                TaggedResource("network-interface", eni["NetworkInterfaceId"], eni["Status"], note)
            )
    return found


def tagged_spot_requests(
    ec2: Any, experiment_id: str, instance_ids: list[str], tag_key: str = TAG_KEY
) -> list[TaggedResource]:
    """Open or active spot requests tagged with the experiment or behind its instances."""
    found: dict[str, TaggedResource] = {}
    queries = [[_tag_filter(experiment_id, tag_key)]]
    if instance_ids:
        queries.append([{"Name": "instance-id", "Values": instance_ids}])
    for filters in queries:
        response = ec2.describe_spot_instance_requests(Filters=filters)
        for request in response.get("SpotInstanceRequests", []):
            if request["State"] in ("open", "active"):
                found[request["SpotInstanceRequestId"]] = TaggedResource(
                    "spot-request",
                    request["SpotInstanceRequestId"],
                    request["State"],
                    request.get("InstanceId", ""),
                )
    return list(found.values())


def tagged_log_groups(
    logs: Any, experiment_id: str, tag_key: str = TAG_KEY
) -> list[TaggedResource]:
    """CloudWatch log groups whose tags carry the experiment."""
    found = []
    for page in logs.get_paginator("describe_log_groups").paginate():
        for group in page["logGroups"]:
            name = group["logGroupName"]
            tags = logs.list_tags_log_group(logGroupName=name).get("tags", {})
            if tags.get(tag_key) == experiment_id:
                found.append(
                    TaggedResource(
                        "log-group", name, "exists", f"{group.get('storedBytes', 0)} bytes"
                    )
                )
    return found
