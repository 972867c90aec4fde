"""Real `cdk bootstrap` / `cdk deploy` / redeploy / `cdk destroy` against moto's server mode.

What moto proves (cdk-notes.md): the CLI and asset plumbing work, the template deploys, the group
launches the right number of instances with the propagated tags, the launch template holds the
IMDSv2 and tag settings as written, and destroy terminates the instances.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.infra.conftest import MotoServer
from tests.infra.support import REPO, run_cdk, tool_env
from tests.support.ports import wait_until

ACCOUNT = "123456789012"
REGION = "us-east-1"
EXPERIMENT = "4242"
STACK = f"optfleet-{EXPERIMENT}"


@pytest.fixture(scope="module")
def aws_env(moto_server: MotoServer) -> dict[str, str]:
    return tool_env(
        {
            "AWS_ENDPOINT_URL": moto_server.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }
    )


def _client(service: str, moto_server: MotoServer) -> Any:
    return boto3.client(
        service,
        endpoint_url=moto_server.endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def existing_network(moto_server: MotoServer) -> Iterator[tuple[str, list[str]]]:
    """A VPC made outside the stack (moto cannot delete a stack-made VPC's routes on destroy)."""
    ec2 = _client("ec2", moto_server)
    vpc_id = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
        for cidr, zone in (("10.7.1.0/24", "us-east-1a"), ("10.7.2.0/24", "us-east-1b"))
    ]
    yield vpc_id, subnets


def _live_instances(ec2: Any) -> list[dict[str, Any]]:
    reservations = ec2.describe_instances(
        Filters=[
            {"Name": "tag:Experiment", "Values": [EXPERIMENT]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )["Reservations"]
    return [instance for reservation in reservations for instance in reservation["Instances"]]


def test_bootstrap_deploy_resize_destroy(
    moto_server: MotoServer,
    aws_env: dict[str, str],
    existing_network: tuple[str, list[str]],
    tmp_path: Path,
) -> None:
    vpc_id, subnet_ids = existing_network
    secrets = _client("secretsmanager", moto_server)
    secrets.create_secret(Name="optfleet/test-token", SecretString="not-a-real-token")

    bootstrap_dir = tmp_path / "bootstrap"  # a folder without cdk.json
    bootstrap_dir.mkdir()
    result = run_cdk(["bootstrap", f"aws://{ACCOUNT}/{REGION}"], cwd=bootstrap_dir, env=aws_env)
    assert result.returncode == 0, result.stderr[-3000:]

    def deploy(fleet_size: int) -> None:
        result = run_cdk(
            [
                "deploy",
                STACK,
                "--output",
                str(tmp_path / "cdk.out"),
                "--method=direct",
                "--no-previous-parameters",
                "--require-approval",
                "never",
                "-c",
                f"experiment_id={EXPERIMENT}",
                "-c",
                f"fleet_size={fleet_size}",
                "-c",
                f"vpc_id={vpc_id}",
                "-c",
                f"subnet_ids={','.join(subnet_ids)}",
                "-c",
                "token_secret=optfleet/test-token",
                "-c",
                "api_url=https://api.example.com",
                "-c",
                "tags=Team=ml,CostCenter=7",
            ],
            cwd=REPO,
            env=aws_env,
        )
        assert result.returncode == 0, result.stderr[-3000:]

    ec2 = _client("ec2", moto_server)
    autoscaling = _client("autoscaling", moto_server)
    cloudformation = _client("cloudformation", moto_server)

    def outputs() -> dict[str, str]:
        stack = cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]
        return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}

    deploy(2)
    first = outputs()
    assert first["ExperimentId"] == EXPERIMENT
    assert first["LogGroupName"] == f"/optfleet/{EXPERIMENT}/agent"
    group_name = first["AutoScalingGroupName"]
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])[
        "AutoScalingGroups"
    ][0]
    assert group["DesiredCapacity"] == 2

    instances = _live_instances(ec2)
    assert len(instances) == 2
    for instance in instances:
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["Experiment"] == EXPERIMENT
        assert tags["ManagedBy"] == "optfleet"
        assert tags["Project"] == "optfleet"
        assert tags["Stack"] == STACK
        assert tags["Team"] == "ml"
        assert tags["CostCenter"] == "7"

    template_id = group["LaunchTemplate"]["LaunchTemplateId"]
    version = ec2.describe_launch_template_versions(
        LaunchTemplateId=template_id, Versions=["$Latest"]
    )
    data = version["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    assert data["MetadataOptions"]["InstanceMetadataTags"] == "enabled"
    assert "KeyName" not in data
    tagged = {
        spec["ResourceType"]: {t["Key"]: t["Value"] for t in spec["Tags"]}
        for spec in data["TagSpecifications"]
    }
    assert set(tagged) == {"instance", "volume", "network-interface"}
    assert all(
        tags["Experiment"] == EXPERIMENT and tags["Team"] == "ml" for tags in tagged.values()
    )
    assert data["BlockDeviceMappings"][0]["Ebs"]["Encrypted"] is True

    deploy(3)
    group_name = outputs()["AutoScalingGroupName"]  # moto may replace the group on update
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])[
        "AutoScalingGroups"
    ][0]
    assert group["DesiredCapacity"] == 3
    wait_until(lambda: len(_live_instances(ec2)) == 3, timeout_s=30, what="third instance")

    result = run_cdk(
        [
            "destroy",
            STACK,
            "--force",
            "--output",
            str(tmp_path / "cdk.out"),
            "-c",
            f"experiment_id={EXPERIMENT}",
            "-c",
            f"vpc_id={vpc_id}",
            "-c",
            f"subnet_ids={','.join(subnet_ids)}",
        ],
        cwd=REPO,
        env=aws_env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert _live_instances(ec2) == []
    assert (
        autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])[
            "AutoScalingGroups"
        ]
        == []
    )
    stacks = cloudformation.list_stacks()["StackSummaries"]
    assert all(s["StackStatus"] == "DELETE_COMPLETE" for s in stacks if s["StackName"] == STACK)
