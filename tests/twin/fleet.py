"""Deploy the experiment's fleet stack into moto with the real CDK CLI, inside the namespace,
and read back what EC2 would boot: the launch template's user data and the group's instances."""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from tests.infra.support import CDK_CLI, REPO, tool_env
from tests.twin.netns import NetworkNamespace
from tests.twin.services import API_URL, MOTO_ENDPOINT

ACCOUNT = "123456789012"
REGION = "us-east-1"
TOKEN_SECRET = "optfleet/twin-token"
WORKLOAD = Path(__file__).parent / "workload"
AWS_ENV = {
    "AWS_ENDPOINT_URL": MOTO_ENDPOINT,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


def aws(service: str) -> Any:
    """A boto3 client for moto (use it inside the namespace)."""
    make: Any = boto3.client
    return make(
        service,
        endpoint_url=MOTO_ENDPOINT,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@dataclass
class DeployedFleet:
    """What `cdk deploy` made: the stack's user data as EC2 holds it, and its instances."""

    experiment_id: str
    user_data: str
    instance_ids: list[str]
    group_name: str
    log_group: str
    role_name: str


def _cdk(netns: NetworkNamespace, args: list[str], cwd: Path) -> None:
    result = subprocess.run(
        netns.command([str(CDK_CLI), *args]),
        cwd=cwd,
        env=tool_env(AWS_ENV),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"cdk {args[0]} failed: {result.stderr[-3000:]}")


def _network_and_secret(token: str) -> tuple[str, list[str]]:
    """An existing VPC (moto cannot delete a stack-made one) and the token's secret."""
    ec2 = aws("ec2")
    vpc_id = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
        for cidr, zone in (("10.9.1.0/24", "us-east-1a"), ("10.9.2.0/24", "us-east-1b"))
    ]
    aws("secretsmanager").create_secret(Name=TOKEN_SECRET, SecretString=token)
    return vpc_id, subnets


def group_instances(group_name: str) -> list[str]:
    """Ids of the group's instances now (the group replaces a terminated one, as on AWS)."""
    [group] = aws("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])[
        "AutoScalingGroups"
    ]
    return sorted(i["InstanceId"] for i in group["Instances"])


def _read_back(experiment_id: str) -> DeployedFleet:
    stack = aws("cloudformation").describe_stacks(StackName=f"optfleet-{experiment_id}")["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack[0]["Outputs"]}
    group_name = outputs["AutoScalingGroupName"]
    [group] = aws("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])[
        "AutoScalingGroups"
    ]
    template = group["LaunchTemplate"]
    version = aws("ec2").describe_launch_template_versions(
        LaunchTemplateId=template["LaunchTemplateId"], Versions=["$Latest"]
    )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    profile_arn = version["IamInstanceProfile"]["Arn"]
    profile = aws("iam").get_instance_profile(InstanceProfileName=profile_arn.split("/")[-1])
    return DeployedFleet(
        experiment_id=experiment_id,
        user_data=base64.b64decode(version["UserData"]).decode(),
        instance_ids=sorted(i["InstanceId"] for i in group["Instances"]),
        group_name=group_name,
        log_group=outputs["LogGroupName"],
        role_name=profile["InstanceProfile"]["Roles"][0]["RoleName"],
    )


def deploy_fleet(
    netns: NetworkNamespace, workdir: Path, experiment_id: str, token: str, fleet_size: int
) -> DeployedFleet:
    """`cdk bootstrap` + `cdk deploy` with a pinned environment, as an operator would."""
    vpc_id, subnet_ids = netns.call(_network_and_secret, token)
    bootstrap_dir = workdir / "bootstrap"  # a folder without cdk.json
    bootstrap_dir.mkdir()
    _cdk(netns, ["bootstrap", f"aws://{ACCOUNT}/{REGION}"], cwd=bootstrap_dir)
    context = {
        "experiment_id": experiment_id,
        "account": ACCOUNT,
        "region": REGION,
        "vpc_id": vpc_id,
        "subnet_ids": ",".join(subnet_ids),
        "fleet_size": str(fleet_size),
        "token_secret": TOKEN_SECRET,
        "api_url": API_URL,
        "workload": str(WORKLOAD),
        "command": "python3 evaluate.py",
        "when_done": "terminate",
    }
    args = [
        "deploy", f"optfleet-{experiment_id}", "--output", str(workdir / "cdk.out"),
        "--method=direct", "--no-previous-parameters", "--require-approval", "never",
        *[arg for key, value in context.items() for arg in ("-c", f"{key}={value}")],
    ]  # fmt: skip
    _cdk(netns, args, cwd=REPO)
    return netns.call(_read_back, experiment_id)
