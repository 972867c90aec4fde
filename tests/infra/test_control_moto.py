"""Real `cdk deploy optfleet-control`, a fleet wired with `-c control=optfleet-control`, then
`cdk destroy` of both against moto's server mode: the data volume must remain.

What moto 5.2.5 cannot do here (measured):
- no CloudFormation model for AWS::SecretsManager::Secret: the stack's generated token secret
  resolves to nothing and the instance policy fails ("Policy statement must contain resources").
  This deploy passes an existing secret with `-c token_secret=ARN`; the generated secret is
  asserted in test_control_template.py.
- AWS::DLM::LifecyclePolicy is skipped (no model, no DLM API); the stack still deploys.
- DeletionPolicy Snapshot is ignored (only Retain is honoured), hence RETAIN on the volume.
- a volume made from a template keeps only Size and AvailabilityZone (not Encrypted, VolumeType,
  Tags); those are asserted on the deployed template.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.infra.conftest import MotoServer
from tests.infra.support import REPO, run_cdk, tool_env

ACCOUNT = "123456789012"
REGION = "us-east-1"
CONTROL = "optfleet-control"
EXPERIMENT = "4343"
FLEET = f"optfleet-{EXPERIMENT}"


def _client(service: str, moto_server: MotoServer) -> Any:
    return boto3.client(
        service,
        endpoint_url=moto_server.endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


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


@pytest.fixture(scope="module")
def network(moto_server: MotoServer) -> Iterator[tuple[str, list[str]]]:
    """A VPC made outside the stacks (moto cannot delete a stack-made VPC's routes)."""
    ec2 = _client("ec2", moto_server)
    vpc_id = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
        for cidr, zone in (("10.9.1.0/24", "us-east-1a"), ("10.9.2.0/24", "us-east-1b"))
    ]
    yield vpc_id, subnets


def _cdk(args: list[str], env: dict[str, str], outdir: Path) -> None:
    result = run_cdk([*args, "--output", str(outdir)], cwd=REPO, env=env, timeout_s=400)
    assert result.returncode == 0, result.stderr[-3000:]


DEPLOY = ["--method=direct", "--no-previous-parameters", "--require-approval", "never"]


def _outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}


def _instances(ec2: Any, key: str, value: str) -> list[dict[str, Any]]:
    reservations = ec2.describe_instances(
        Filters=[
            {"Name": f"tag:{key}", "Values": [value]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def test_control_plane_then_wired_fleet_then_destroy_keeps_the_data(
    moto_server: MotoServer,
    aws_env: dict[str, str],
    network: tuple[str, list[str]],
    tmp_path: Path,
) -> None:
    vpc_id, subnet_ids = network
    ec2 = _client("ec2", moto_server)
    cloudformation = _client("cloudformation", moto_server)
    secrets = _client("secretsmanager", moto_server)
    autoscaling = _client("autoscaling", moto_server)

    # moto cannot create AWS::SecretsManager::Secret from a template: bring the token secret.
    token = "moto-token-" + "x" * 32
    secret_arn = secrets.create_secret(Name="optfleet/control-token", SecretString=token)["ARN"]

    bootstrap_dir = tmp_path / "bootstrap"
    bootstrap_dir.mkdir()
    result = run_cdk(["bootstrap", f"aws://{ACCOUNT}/{REGION}"], cwd=bootstrap_dir, env=aws_env)
    assert result.returncode == 0, result.stderr[-3000:]

    control_context = [
        "-c", f"vpc_id={vpc_id}",
        "-c", f"subnet_ids={','.join(subnet_ids)}",
        "-c", "availability_zone=us-east-1a",
        "-c", f"token_secret={secret_arn}",
    ]  # fmt: skip
    _cdk(["deploy", CONTROL, *DEPLOY, *control_context], aws_env, tmp_path / "control.out")

    out = _outputs(cloudformation, CONTROL)
    assert re.fullmatch(r"http://10\.9\.1\.\d+:8080", out["ApiUrl"]), out["ApiUrl"]
    assert out["VpcId"] == vpc_id
    assert out["SubnetIds"] == ",".join(subnet_ids)
    exports = {e["Name"]: e["Value"] for e in cloudformation.list_exports()["Exports"]}
    for key in ("ApiUrl", "TokenSecretArn", "VpcId", "SubnetIds", "ClientSecurityGroupId"):
        assert exports[f"{CONTROL}:{key}"] == out[key]

    # The token secret: referenced by ARN, its value nowhere in the launch template.
    assert out["TokenSecretArn"] == secret_arn
    (server,) = _instances(ec2, "Stack", CONTROL)
    assert server["Placement"]["AvailabilityZone"] == "us-east-1a"
    group = autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=[out["ServerGroupName"]]
    )["AutoScalingGroups"][0]
    assert (group["MinSize"], group["MaxSize"]) == (1, 1)
    template_data = ec2.describe_launch_template_versions(
        LaunchTemplateId=group["LaunchTemplate"]["LaunchTemplateId"], Versions=["$Latest"]
    )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    server_script = base64.b64decode(template_data["UserData"]).decode()
    assert token not in server_script
    assert re.search(f"TOKEN_SECRET_ARN='?{re.escape(out['TokenSecretArn'])}'?\n", server_script)
    assert re.search(f"DATA_VOLUME_ID='?{out['DataVolumeId']}'?\n", server_script)
    assert template_data["MetadataOptions"]["HttpTokens"] == "required"

    # The data volume: in the group's AZ, tagged for the DLM snapshot policy. moto's volume
    # model passes on only Size and AvailabilityZone (not Encrypted, VolumeType, Tags), so
    # those are checked on the deployed template.
    (volume,) = ec2.describe_volumes(VolumeIds=[out["DataVolumeId"]])["Volumes"]
    assert volume["AvailabilityZone"] == "us-east-1a"
    deployed = cloudformation.get_template(StackName=CONTROL)["TemplateBody"]
    resources = (json.loads(deployed) if isinstance(deployed, str) else deployed)["Resources"]
    (volume_resource,) = [r for r in resources.values() if r["Type"] == "AWS::EC2::Volume"]
    assert volume_resource["DeletionPolicy"] == "Retain"
    assert volume_resource["Properties"]["Encrypted"] is True
    assert volume_resource["Properties"]["VolumeType"] == "gp3"
    assert {"Key": "optfleet:backup", "Value": CONTROL} in volume_resource["Properties"]["Tags"]
    assert [r for r in resources.values() if r["Type"] == "AWS::DLM::LifecyclePolicy"]

    # API port open only from the exported client group.
    client_group = out["ClientSecurityGroupId"]
    (server_group,) = ec2.describe_security_groups(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "description", "Values": ["*API only from the fleet client group*"]},
        ]
    )["SecurityGroups"]
    ingress = server_group["IpPermissions"]
    assert [(p["FromPort"], p["ToPort"]) for p in ingress] == [(8080, 8080)]
    assert ingress[0]["IpRanges"] == []
    assert [g["GroupId"] for g in ingress[0]["UserIdGroupPairs"]] == [client_group]

    # A fleet wired by name only.
    fleet_context = ["-c", f"experiment_id={EXPERIMENT}", "-c", f"control={CONTROL}"]
    _cdk(["deploy", FLEET, *DEPLOY, *fleet_context], aws_env, tmp_path / "fleet.out")
    fleet_out = _outputs(cloudformation, FLEET)
    fleet_group = autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=[fleet_out["AutoScalingGroupName"]]
    )["AutoScalingGroups"][0]
    assert sorted(fleet_group["VPCZoneIdentifier"].split(",")) == sorted(subnet_ids)
    fleet_data = ec2.describe_launch_template_versions(
        LaunchTemplateId=fleet_group["LaunchTemplate"]["LaunchTemplateId"], Versions=["$Latest"]
    )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    fleet_script = base64.b64decode(fleet_data["UserData"]).decode()
    assert f"SIGOPT_API_URL={out['ApiUrl']}" in fleet_script
    assert f"OPTFLEET_TOKEN_SECRET={out['TokenSecretArn']}" in fleet_script
    assert token not in fleet_script
    groups = fleet_data.get("SecurityGroupIds") or [
        g for ni in fleet_data.get("NetworkInterfaces", []) for g in ni.get("Groups", [])
    ]
    assert client_group in groups
    workers = _instances(ec2, "Experiment", EXPERIMENT)
    assert len(workers) == 1
    assert workers[0]["SubnetId"] in subnet_ids

    _cdk(["destroy", FLEET, "--force", *fleet_context], aws_env, tmp_path / "fleet.out")
    assert _instances(ec2, "Experiment", EXPERIMENT) == []
    _cdk(["destroy", CONTROL, "--force", *control_context], aws_env, tmp_path / "control.out")
    assert _instances(ec2, "Stack", CONTROL) == []
    stacks = cloudformation.list_stacks()["StackSummaries"]
    assert all(
        s["StackStatus"] == "DELETE_COMPLETE" for s in stacks if s["StackName"] in (FLEET, CONTROL)
    )
    # The data outlives the control plane.
    (kept,) = ec2.describe_volumes(VolumeIds=[out["DataVolumeId"]])["Volumes"]
    assert kept["State"] == "available"
