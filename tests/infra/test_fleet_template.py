"""Template assertions for the fleet stack: one synth per configuration, many assertions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.support import REPO, Synthesized, flatten, synth

WORKLOAD = Path(__file__).parent / "data" / "workload"
SPOT_CONTEXT = {
    "experiment_id": "77",
    "fleet_size": "5",
    "instance_types": "c7i.large,c6i.large,m7i.large",
    "spot_percentage": "80",
    "on_demand_base": "1",
    "max_price": "0.09",
    "api_url": "http://10.1.2.3:8080",
    "token_secret": "optfleet/api-token",
    "tags": "Team=ml,CostCenter=1234",
    "log_retention_days": "14",
    "when_done": "terminate",
    "root_volume_gb": "40",
    "workload": str(WORKLOAD),
    "command": "python evaluate.py --fast",
}
# Secret-like content that must never appear in user data.
SECRET_PATTERNS = (
    re.compile(r"AKIA[0-9A-Z]{16}"),
    re.compile(r"SIGOPT_API_TOKEN", re.IGNORECASE),
    re.compile(r"aws_secret_access_key", re.IGNORECASE),
    re.compile(r"BEGIN [A-Z ]*PRIVATE KEY"),
    re.compile(r"password", re.IGNORECASE),
)
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:optfleet/tok-AbCdEf"
DLAMI_PARAMETER = (
    "/aws/service/deeplearning/ami/x86_64/"
    "base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id"
)
# Actions AWS authorizes only on "*" (no resource-level permissions).
STAR_RESOURCE_ACTIONS = {
    "ec2:DescribeInstances",
    "autoscaling:DescribeAutoScalingInstances",
    "ec2:DescribeSpotPriceHistory",
    "pricing:GetProducts",
}


@pytest.fixture(scope="module")
def default_fleet(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth({"experiment_id": "42"}, tmp_path_factory.mktemp("default"))


@pytest.fixture(scope="module")
def spot_fleet(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: Any) -> Synthesized:
    return synth(SPOT_CONTEXT, tmp_path_factory.mktemp("spot"))


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    """Workload wheels come from the local wheelhouse: tests never download."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PIP_NO_INDEX", "1")
    mp.setenv("PIP_FIND_LINKS", str(REPO / ".stamps" / "wheelhouse"))
    yield mp
    mp.undo()


def _launch_data(fleet: Synthesized) -> dict[str, Any]:
    return fleet.one("AWS::EC2::LaunchTemplate")["Properties"]["LaunchTemplateData"]


def _user_data(fleet: Synthesized) -> str:
    return flatten(_launch_data(fleet)["UserData"])


def _statements(fleet: Synthesized) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for policy in fleet.resources("AWS::IAM::Policy").values():
        found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("fleet_name", ["default_fleet", "spot_fleet"])
class TestEveryFleet:
    def test_security_group_has_no_ingress_and_limited_egress(
        self, fleet_name: str, request: Any
    ) -> None:
        fleet: Synthesized = request.getfixturevalue(fleet_name)
        group = fleet.one("AWS::EC2::SecurityGroup")["Properties"]
        assert "SecurityGroupIngress" not in group
        assert fleet.resources("AWS::EC2::SecurityGroupIngress") == {}
        ports = sorted(
            (rule["FromPort"], rule["ToPort"], rule["IpProtocol"])
            for rule in group["SecurityGroupEgress"]
        )
        expected = [(443, 443, "tcp")] + (
            [(8080, 8080, "tcp")] if fleet_name == "spot_fleet" else []
        )
        assert ports == sorted(expected)

    def test_launch_template_requires_imdsv2_with_hop_limit_one_and_tags(
        self, fleet_name: str, request: Any
    ) -> None:
        metadata = _launch_data(request.getfixturevalue(fleet_name))["MetadataOptions"]
        assert metadata == {
            "HttpEndpoint": "enabled",
            "HttpTokens": "required",
            "HttpPutResponseHopLimit": 1,
            "InstanceMetadataTags": "enabled",
        }

    def test_root_volume_is_encrypted_gp3(self, fleet_name: str, request: Any) -> None:
        fleet: Synthesized = request.getfixturevalue(fleet_name)
        (mapping,) = _launch_data(fleet)["BlockDeviceMappings"]
        assert mapping["DeviceName"] == "/dev/xvda"
        size = 40 if fleet_name == "spot_fleet" else 20
        assert mapping["Ebs"] == {
            "Encrypted": True,
            "VolumeType": "gp3",
            "VolumeSize": size,
            "DeleteOnTermination": True,
        }

    def test_no_key_pair(self, fleet_name: str, request: Any) -> None:
        assert "KeyName" not in _launch_data(request.getfixturevalue(fleet_name))

    def test_tag_specifications_cover_instance_volume_and_network_interface(
        self, fleet_name: str, request: Any
    ) -> None:
        fleet: Synthesized = request.getfixturevalue(fleet_name)
        specs = {
            s["ResourceType"]: {t["Key"]: t["Value"] for t in s["Tags"]}
            for s in _launch_data(fleet)["TagSpecifications"]
        }
        assert set(specs) == {"instance", "volume", "network-interface"}
        experiment = "77" if fleet_name == "spot_fleet" else "42"
        for tags in specs.values():
            assert tags["Experiment"] == experiment
            assert tags["Project"] == "optfleet"
            assert tags["ManagedBy"] == "optfleet"
            assert tags["Stack"] == f"optfleet-{experiment}"
            if fleet_name == "spot_fleet":
                assert tags["Team"] == "ml" and tags["CostCenter"] == "1234"

    def test_group_tags_propagate_to_instances(self, fleet_name: str, request: Any) -> None:
        fleet: Synthesized = request.getfixturevalue(fleet_name)
        tags = {
            t["Key"]: t
            for t in fleet.one("AWS::AutoScaling::AutoScalingGroup")["Properties"]["Tags"]
        }
        for key in ("Experiment", "Project", "ManagedBy", "Stack"):
            assert tags[key]["PropagateAtLaunch"] is True

    def test_every_taggable_resource_carries_the_experiment_tag(
        self, fleet_name: str, request: Any
    ) -> None:
        fleet: Synthesized = request.getfixturevalue(fleet_name)
        experiment = "77" if fleet_name == "spot_fleet" else "42"
        for logical_id, resource in fleet.template["Resources"].items():
            tags = resource.get("Properties", {}).get("Tags")
            if isinstance(tags, list):
                assert {"Key": "Experiment", "Value": experiment} in [
                    {"Key": t["Key"], "Value": t["Value"]} for t in tags
                ], logical_id

    def test_user_data_holds_no_secret_and_runs_the_install(
        self, fleet_name: str, request: Any
    ) -> None:
        script = _user_data(request.getfixturevalue(fleet_name))
        for pattern in SECRET_PATTERNS:
            assert not pattern.search(script), pattern.pattern
        assert script.startswith("#!/bin/bash\n")
        assert "set -euo pipefail" in script
        assert "--no-index --find-links" in script
        assert 'worker-bootstrap" install' in script
        assert "systemctl enable --now optfleet-agent.service" in script

    def test_no_star_action_and_star_resource_only_where_aws_has_nothing_narrower(
        self, fleet_name: str, request: Any
    ) -> None:
        for statement in _statements(request.getfixturevalue(fleet_name)):
            actions = _as_list(statement["Action"])
            assert all("*" not in action for action in actions), statement
            if "*" in _as_list(statement["Resource"]):
                assert set(actions) <= STAR_RESOURCE_ACTIONS, statement

    def test_asset_reads_are_single_objects(self, fleet_name: str, request: Any) -> None:
        for statement in _statements(request.getfixturevalue(fleet_name)):
            if any(a.startswith("s3:") for a in _as_list(statement["Action"])):
                assert _as_list(statement["Action"]) == ["s3:GetObject"]
                for resource in _as_list(statement["Resource"]):
                    assert re.search(r"/[0-9a-f]{64}\.zip$", flatten(resource)), resource

    def test_ssm_core_is_the_only_managed_policy(self, fleet_name: str, request: Any) -> None:
        role = request.getfixturevalue(fleet_name).one("AWS::IAM::Role")["Properties"]
        (policy,) = role["ManagedPolicyArns"]
        assert flatten(policy).endswith(":iam::aws:policy/AmazonSSMManagedInstanceCore")
        assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
            "Service": "ec2.amazonaws.com"
        }

    def test_log_group_with_retention_and_scoped_writes(
        self, fleet_name: str, request: Any
    ) -> None:
        fleet: Synthesized = request.getfixturevalue(fleet_name)
        experiment = "77" if fleet_name == "spot_fleet" else "42"
        group = fleet.one("AWS::Logs::LogGroup")["Properties"]
        assert group["LogGroupName"] == f"/optfleet/{experiment}/agent"
        assert group["RetentionInDays"] == (14 if fleet_name == "spot_fleet" else 30)
        logs = [
            s
            for s in _statements(fleet)
            if any(a.startswith("logs:") for a in _as_list(s["Action"]))
        ]
        (statement,) = logs
        assert sorted(statement["Action"]) == [
            "logs:CreateLogStream",
            "logs:DescribeLogStreams",
            "logs:PutLogEvents",
        ]
        (group_id,) = fleet.resources("AWS::Logs::LogGroup")
        for resource in _as_list(statement["Resource"]):
            text = flatten(resource)
            assert text == f"<{group_id}.Arn>" or text.endswith(
                f":log-group:/optfleet/{experiment}/agent:log-stream:*"
            )

    def test_outputs(self, fleet_name: str, request: Any) -> None:
        outputs = request.getfixturevalue(fleet_name).template["Outputs"]
        assert {"ExperimentId", "AutoScalingGroupName", "LogGroupName"} <= set(outputs)

    def test_cdk_nag_has_no_unacknowledged_finding_and_every_acknowledgement_has_a_reason(
        self, fleet_name: str, request: Any
    ) -> None:
        fleet: Synthesized = request.getfixturevalue(fleet_name)
        report = json.loads((fleet.outdir / "validation-report.json").read_text())
        (plugin,) = report["pluginReports"]
        assert plugin["pluginName"] == "AwsSolutions"
        assert plugin["conclusion"] == "success"
        assert plugin["violations"] == []
        suppressed = plugin["suppressedViolations"]
        assert suppressed, "expected the known, acknowledged findings"
        for finding in suppressed:
            assert len(finding["reason"]) > 40, finding["ruleName"]


def test_default_fleet_is_on_demand_with_one_type(default_fleet: Synthesized) -> None:
    group = default_fleet.one("AWS::AutoScaling::AutoScalingGroup")["Properties"]
    assert "MixedInstancesPolicy" not in group
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == ("0", "1", "1")
    assert _launch_data(default_fleet)["InstanceType"] == "m7i.large"
    assert "CapacityRebalance" not in group


def test_default_fleet_boots_amazon_linux_2023_from_ssm_without_lookup(
    default_fleet: Synthesized,
) -> None:
    image = _launch_data(default_fleet)["ImageId"]
    parameter = default_fleet.template["Parameters"][image["Ref"]]
    assert parameter["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
    assert (
        parameter["Default"]
        == "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    )


def test_default_fleet_makes_a_vpc_with_public_subnets_and_no_nat(
    default_fleet: Synthesized,
) -> None:
    assert len(default_fleet.resources("AWS::EC2::VPC")) == 1
    assert default_fleet.resources("AWS::EC2::NatGateway") == {}
    for subnet in default_fleet.resources("AWS::EC2::Subnet").values():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is True
    assert default_fleet.resources("AWS::Lambda::Function") == {}


def test_default_fleet_stays_when_done_without_scaling_permissions(
    default_fleet: Synthesized,
) -> None:
    actions = {a for s in _statements(default_fleet) for a in _as_list(s["Action"])}
    assert not any(a.startswith("autoscaling:") for a in actions)
    assert "ec2:StopInstances" not in actions
    assert not any(a.startswith("secretsmanager:") for a in actions)


def test_spot_fleet_uses_capacity_optimized_mixed_instances_with_rebalance(
    spot_fleet: Synthesized,
) -> None:
    group = spot_fleet.one("AWS::AutoScaling::AutoScalingGroup")["Properties"]
    assert group["CapacityRebalance"] is True
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == ("0", "5", "5")
    policy = group["MixedInstancesPolicy"]
    assert policy["InstancesDistribution"] == {
        "OnDemandAllocationStrategy": "lowest-price",
        "OnDemandBaseCapacity": 1,
        "OnDemandPercentageAboveBaseCapacity": 20,
        "SpotAllocationStrategy": "capacity-optimized",
        "SpotMaxPrice": "0.09",
    }
    overrides = [o["InstanceType"] for o in policy["LaunchTemplate"]["Overrides"]]
    assert overrides == ["c7i.large", "c6i.large", "m7i.large"]
    assert "InstanceType" not in _launch_data(spot_fleet)


def test_spot_fleet_reads_only_its_token_secret(spot_fleet: Synthesized) -> None:
    secret = [
        s
        for s in _statements(spot_fleet)
        if "secretsmanager:GetSecretValue" in _as_list(s["Action"])
    ]
    (statement,) = secret
    assert _as_list(statement["Action"]) == ["secretsmanager:GetSecretValue"]
    (resource,) = _as_list(statement["Resource"])
    assert flatten(resource).endswith(":secret:optfleet/api-token-??????")


def test_spot_fleet_may_terminate_only_in_its_own_group(spot_fleet: Synthesized) -> None:
    (policy,) = [p for p in spot_fleet.resources("AWS::IAM::Policy") if "WhenDone" in p]
    statements = spot_fleet.template["Resources"][policy]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    terminate = [
        s for s in statements if s["Action"] == "autoscaling:TerminateInstanceInAutoScalingGroup"
    ]
    (statement,) = terminate
    group_id = next(iter(spot_fleet.resources("AWS::AutoScaling::AutoScalingGroup")))
    assert flatten(statement["Resource"]).endswith(
        f":autoScalingGroup:*:autoScalingGroupName/<{group_id}>"
    )


def test_spot_fleet_user_data_passes_the_settings_but_no_token(spot_fleet: Synthesized) -> None:
    script = _user_data(spot_fleet)
    assert "OPTFLEET_EXPERIMENT_ID=77" in script
    assert "SIGOPT_API_URL=http://10.1.2.3:8080" in script
    # Plain http inside the VPC until the fleet CA exists: the agent's explicit opt-out.
    assert "OPTFLEET_ALLOW_PLAINTEXT=1" in script
    assert "OPTFLEET_TOKEN_SECRET=optfleet/api-token" in script
    assert "'OPTFLEET_COMMAND=python evaluate.py --fast'" in script
    assert "OPTFLEET_WHEN_DONE=terminate" in script
    assert "LOG_GROUP=/optfleet/77/agent" in script
    assert re.search(r"WORKLOAD_URL='s3://[^']+/[0-9a-f]{64}\.zip'", script)


def test_workload_asset_ships_wheels_for_its_requirements(spot_fleet: Synthesized) -> None:
    staged = [p for p in spot_fleet.outdir.glob("asset.*") if (p / "requirements.txt").is_file()]
    (workload,) = staged
    wheels = workload / ".optfleet-wheels"
    assert (wheels / "COMPLETE").is_file()
    assert [w.name.split("-")[0] for w in wheels.glob("*.whl")] == ["idna"]


@pytest.fixture(scope="module")
def arm_fleet(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Graviton types, an existing VPC, a complete secret ARN and `when_done = stop`."""
    return synth(
        {
            "experiment_id": "arm-1",
            "instance_types": "c7g.large",
            "vpc_id": "vpc-0123456789abcdef0",
            "subnet_ids": "subnet-0123456789abcdef0,subnet-0fedcba9876543210",
            "token_secret": SECRET_ARN,
            "when_done": "stop",
        },
        tmp_path_factory.mktemp("arm"),
    )


def test_graviton_fleet_boots_the_arm64_image(arm_fleet: Synthesized) -> None:
    image = _launch_data(arm_fleet)["ImageId"]
    parameter = arm_fleet.template["Parameters"][image["Ref"]]
    assert parameter["Default"].endswith("/al2023-ami-kernel-default-arm64")


def test_existing_vpc_is_used_by_id_without_making_one(arm_fleet: Synthesized) -> None:
    assert arm_fleet.resources("AWS::EC2::VPC") == {}
    assert arm_fleet.resources("AWS::EC2::Subnet") == {}
    group = arm_fleet.one("AWS::AutoScaling::AutoScalingGroup")["Properties"]
    assert group["VPCZoneIdentifier"] == ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
    security_group = arm_fleet.one("AWS::EC2::SecurityGroup")["Properties"]
    assert security_group["VpcId"] == "vpc-0123456789abcdef0"


def test_complete_secret_arn_is_granted_exactly(arm_fleet: Synthesized) -> None:
    (statement,) = [
        s
        for s in _statements(arm_fleet)
        if "secretsmanager:GetSecretValue" in _as_list(s["Action"])
    ]
    assert statement["Resource"] == [SECRET_ARN, f"{SECRET_ARN}-??????"]


def test_stop_when_done_may_stop_only_this_experiments_instances(arm_fleet: Synthesized) -> None:
    (statement,) = [s for s in _statements(arm_fleet) if s["Action"] == "ec2:StopInstances"]
    assert flatten(statement["Resource"]).endswith(":instance/*")
    assert statement["Condition"] == {
        "StringEquals": {
            "aws:ResourceTag/Experiment": "arm-1",
            "aws:ResourceTag/ManagedBy": "optfleet",
        }
    }
    # Standby first, so the group neither health-checks nor replaces the stopped instance.
    (standby,) = [
        s for s in _statements(arm_fleet) if "autoscaling:EnterStandby" in _as_list(s["Action"])
    ]
    group_id = next(iter(arm_fleet.resources("AWS::AutoScaling::AutoScalingGroup")))
    assert flatten(standby["Resource"]).endswith(
        f":autoScalingGroup:*:autoScalingGroupName/<{group_id}>"
    )
    actions = {a for s in _statements(arm_fleet) for a in _as_list(s["Action"])}
    assert {a for a in actions if a.startswith("autoscaling:")} == {
        "autoscaling:DescribeAutoScalingInstances",
        "autoscaling:EnterStandby",
        "autoscaling:ExitStandby",
    }


def test_ami_id_and_ssm_parameter_settings(tmp_path_factory: pytest.TempPathFactory) -> None:
    by_id = synth(
        {"experiment_id": "ami-1", "ami": "ami-0123456789abcdef0"}, tmp_path_factory.mktemp("amiid")
    )
    assert _launch_data(by_id)["ImageId"] == "ami-0123456789abcdef0"
    name = DLAMI_PARAMETER
    by_parameter = synth(
        {"experiment_id": "ami-2", "ami": name, "instance_types": "g6.xlarge"},
        tmp_path_factory.mktemp("amissm"),
    )
    image = _launch_data(by_parameter)["ImageId"]
    assert by_parameter.template["Parameters"][image["Ref"]]["Default"] == name
