"""The few AWS calls the agent makes, through boto3 imported only when one is needed.

Endpoints follow the SDK's own conventions (``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_EC2`` …), so
tests point them at moto's server mode.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Optional, Set

DEAD_STATES = ("terminated", "shutting-down")
LIVE_STATES = ("pending", "running")


class AwsError(Exception):
    """An AWS call failed; the message names the call and the resource."""


def _client(service: str, region: Optional[str]) -> Any:
    try:
        import boto3
    except ImportError:
        raise AwsError(
            f"boto3 is needed for {service} calls: install optfleet[aws] or pip install boto3"
        ) from None
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30
    )
    make: Any = boto3.client  # service is chosen at run time, not a literal
    return make(service, region_name=region, config=config)


def secret_token(secret_id: str, region: Optional[str]) -> str:
    """The API token stored in Secrets Manager (plain string, or JSON with a ``token`` key)."""
    try:
        # AWSCURRENT explicitly, what a finished rotation made current: moto's server answered a
        # request without a stage with the value from before the rotation's stage move.
        response = _client("secretsmanager", region).get_secret_value(
            SecretId=secret_id, VersionStage="AWSCURRENT"
        )
    except AwsError:
        raise
    except Exception as exc:
        raise AwsError(
            f"cannot read secret {secret_id!r} from Secrets Manager: {type(exc).__name__}: {exc}"
        ) from None
    text = response.get("SecretString")
    if not isinstance(text, str) or not text.strip():
        raise AwsError(f"secret {secret_id!r} has no SecretString")
    text = text.strip()
    if text.startswith("{"):
        try:
            payload = json.loads(text)
        except ValueError:
            raise AwsError(f"secret {secret_id!r} looks like JSON but does not parse") from None
        for key in ("token", "api_token", "SIGOPT_API_TOKEN"):
            if isinstance(payload, dict) and isinstance(payload.get(key), str):
                return str(payload[key])
        raise AwsError(f"secret {secret_id!r} is JSON without a 'token' key")
    return text


def credentials_available(region: Optional[str]) -> bool:
    """True when boto3 is installed and finds credentials (an instance role on EC2)."""
    try:
        import boto3
    except ImportError:
        return False
    try:
        return boto3.Session(region_name=region).get_credentials() is not None
    except Exception:
        return False


def instance_states(instance_ids: Iterable[str], region: Optional[str]) -> Dict[str, str]:
    """State name per instance id; ids EC2 does not know are absent from the result."""
    ids = sorted(set(instance_ids))
    states: Dict[str, str] = {}
    if not ids:
        return states
    ec2 = _client("ec2", region)
    try:
        for start in range(0, len(ids), 200):
            pages = ec2.get_paginator("describe_instances").paginate(
                Filters=[{"Name": "instance-id", "Values": ids[start : start + 200]}]
            )
            for page in pages:
                for reservation in page.get("Reservations", []):
                    for instance in reservation.get("Instances", []):
                        states[instance["InstanceId"]] = instance["State"]["Name"]
    except Exception as exc:
        raise AwsError(f"ec2:DescribeInstances failed: {type(exc).__name__}: {exc}") from None
    return states


def live_instances_of(experiment_id: str, region: Optional[str]) -> Set[str]:
    """Pending or running instances tagged ``Experiment=<id>``."""
    ec2 = _client("ec2", region)
    live: Set[str] = set()
    try:
        pages = ec2.get_paginator("describe_instances").paginate(
            Filters=[
                {"Name": "tag:Experiment", "Values": [experiment_id]},
                {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
            ]
        )
        for page in pages:
            for reservation in page.get("Reservations", []):
                for instance in reservation.get("Instances", []):
                    live.add(instance["InstanceId"])
    except Exception as exc:
        raise AwsError(f"ec2:DescribeInstances failed: {type(exc).__name__}: {exc}") from None
    return live


def stop_instance(instance_id: str, region: Optional[str]) -> str:
    """Stop this instance; returns what was done.

    In an Auto Scaling group a stopped instance fails its health check and is replaced by a new
    one, which finds the experiment done and stops too, and so on. So the instance first enters
    Standby (not health-checked, the desired capacity decremented), then stops; if the stop
    fails it leaves Standby again, so the group is as before.
    """
    autoscaling = _client("autoscaling", region)
    group = ""
    try:
        found: List[Dict[str, Any]] = autoscaling.describe_auto_scaling_instances(
            InstanceIds=[instance_id]
        ).get("AutoScalingInstances", [])
    except Exception as exc:  # e.g. no permission outside optfleet's stacks: stop as asked
        found = []
        unknown = f" (auto scaling group unknown: {type(exc).__name__})"
    else:
        unknown = ""
    try:
        if found and found[0].get("LifecycleState") == "InService":
            group = str(found[0].get("AutoScalingGroupName"))
            autoscaling.enter_standby(
                InstanceIds=[instance_id],
                AutoScalingGroupName=group,
                ShouldDecrementDesiredCapacity=True,
            )
    except Exception as exc:
        raise AwsError(f"standby of {instance_id}: {type(exc).__name__}: {exc}") from None
    try:
        _client("ec2", region).stop_instances(InstanceIds=[instance_id])
    except Exception as exc:
        failure = f"ec2:StopInstances {instance_id}: {type(exc).__name__}: {exc}"
        if group:
            try:
                autoscaling.exit_standby(InstanceIds=[instance_id], AutoScalingGroupName=group)
                failure += f"; left standby in {group} again"
            except Exception as undo:
                failure += f"; still in standby in {group}: {type(undo).__name__}: {undo}"
        raise AwsError(failure) from None
    if group:
        return f"stopped (standby in auto scaling group {group})"
    return "stopped" + unknown


def terminate_instance(instance_id: str, region: Optional[str]) -> str:
    """Terminate this instance, decrementing its Auto Scaling group's desired capacity."""
    autoscaling = _client("autoscaling", region)
    try:
        found: List[Dict[str, Any]] = autoscaling.describe_auto_scaling_instances(
            InstanceIds=[instance_id]
        ).get("AutoScalingInstances", [])
        if found:
            autoscaling.terminate_instance_in_auto_scaling_group(
                InstanceId=instance_id, ShouldDecrementDesiredCapacity=True
            )
            return f"terminated in auto scaling group {found[0].get('AutoScalingGroupName')}"
        _client("ec2", region).terminate_instances(InstanceIds=[instance_id])
    except Exception as exc:
        raise AwsError(f"terminating {instance_id}: {type(exc).__name__}: {exc}") from None
    return "terminated"


def client(service: str, region: Optional[str]) -> Any:
    """A boto3 client with timeouts and bounded retries (for pricing and cost lookups)."""
    return _client(service, region)
