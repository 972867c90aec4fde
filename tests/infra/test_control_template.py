"""Template assertions for the control plane (small, ha, public HTTPS) and a fleet wired to it;
cdk-nag clean; cfn-lint clean; control settings fail with one line naming the setting."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from infra.control_settings import load_control_settings
from infra.settings import SettingsError, load_settings
from tests.infra.support import REPO, VENV_BIN, Synthesized, flatten

CERT = "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"


def _synth(context: dict[str, Any], outdir: Path, stack: str) -> Synthesized:
    from infra.app import build_app

    assembly = build_app(context=context, outdir=str(outdir), cwd=REPO).synth()
    return Synthesized(template=assembly.get_stack_by_name(stack).template, outdir=outdir)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return _synth({}, tmp_path_factory.mktemp("small"), "optfleet-control")


@pytest.fixture(scope="module")
def pinned(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """`-c account=… -c region=…`: cdk-nag reports ARNs with the concrete values then."""
    context = {"account": "123456789012", "region": "us-east-1"}
    return _synth(context, tmp_path_factory.mktemp("pinned"), "optfleet-control")


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return _synth({"size": "ha"}, tmp_path_factory.mktemp("ha"), "optfleet-control")


@pytest.fixture(scope="module")
def public(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    context = {"size": "ha", "domain": "hpo.example.com", "certificate_arn": CERT}
    return _synth(context, tmp_path_factory.mktemp("public"), "optfleet-control")


@pytest.fixture(scope="module")
def wired_fleet(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    context = {"experiment_id": "61", "control": "optfleet-control"}
    return _synth(context, tmp_path_factory.mktemp("wired"), "optfleet-61")


def _statements(stack: Synthesized) -> list[dict[str, Any]]:
    return [
        s
        for policy in stack.resources("AWS::IAM::Policy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _group_id(stack: Synthesized, description_part: str) -> str:
    (found,) = [
        k
        for k, v in stack.resources("AWS::EC2::SecurityGroup").items()
        if description_part in v["Properties"]["GroupDescription"]
    ]
    return found


def _ingress(stack: Synthesized) -> list[dict[str, Any]]:
    rules = [r["Properties"] for r in stack.resources("AWS::EC2::SecurityGroupIngress").values()]
    for group in stack.resources("AWS::EC2::SecurityGroup").values():
        rules += group["Properties"].get("SecurityGroupIngress", [])
    return rules


def _user_data(stack: Synthesized) -> str:
    data = stack.one("AWS::EC2::LaunchTemplate")["Properties"]["LaunchTemplateData"]
    return flatten(data["UserData"])


@pytest.mark.parametrize("name", ["small", "ha", "public", "pinned"])
def test_cdk_nag_clean_with_reasons_and_no_lambda(name: str, request: Any) -> None:
    stack: Synthesized = request.getfixturevalue(name)
    report = json.loads((stack.outdir / "validation-report.json").read_text())
    (plugin,) = report["pluginReports"]
    assert plugin["conclusion"] == "success"
    assert plugin["violations"] == []
    for finding in plugin["suppressedViolations"]:
        assert len(finding["reason"]) > 20, finding["ruleName"]
    assert stack.resources("AWS::Lambda::Function") == {}


@pytest.mark.parametrize("name", ["small", "ha"])
def test_private_api_is_reachable_only_from_the_exported_client_group(
    name: str, request: Any
) -> None:
    stack: Synthesized = request.getfixturevalue(name)
    client = _group_id(stack, "fleets: attach to reach")
    for rule in _ingress(stack):
        assert "CidrIp" not in rule and "CidrIpv6" not in rule, rule
    api_rules = [r for r in _ingress(stack) if r["FromPort"] == 8080]
    from_client = [
        r for r in api_rules if r["SourceSecurityGroupId"] == {"Fn::GetAtt": [client, "GroupId"]}
    ]
    assert from_client, api_rules
    if name == "small":
        assert len(api_rules) == 1
        assert stack.resources("AWS::ElasticLoadBalancingV2::LoadBalancer") == {}
    else:
        (alb,) = stack.resources("AWS::ElasticLoadBalancingV2::LoadBalancer").values()
        assert alb["Properties"]["Scheme"] == "internal"


def test_public_https_is_443_only_with_the_certificate(public: Synthesized) -> None:
    (alb,) = public.resources("AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    assert alb["Properties"]["Scheme"] == "internet-facing"
    (listener,) = public.resources("AWS::ElasticLoadBalancingV2::Listener").values()
    assert listener["Properties"]["Port"] == 443
    assert listener["Properties"]["Protocol"] == "HTTPS"
    assert listener["Properties"]["Certificates"] == [{"CertificateArn": CERT}]
    public_rules = [r for r in _ingress(public) if "CidrIp" in r]
    assert [(r["CidrIp"], r["FromPort"], r["ToPort"]) for r in public_rules] == [
        ("0.0.0.0/0", 443, 443)
    ]
    assert public.template["Outputs"]["ApiUrl"]["Value"] == "https://hpo.example.com"


def test_small_keeps_sqlite_on_an_encrypted_retained_volume_with_daily_snapshots(
    small: Synthesized,
) -> None:
    volume = small.one("AWS::EC2::Volume")
    assert volume["DeletionPolicy"] == "Retain"
    assert volume["UpdateReplacePolicy"] == "Retain"
    props = volume["Properties"]
    assert props["Encrypted"] is True and props["VolumeType"] == "gp3" and props["Size"] == 20
    assert {"Key": "optfleet:backup", "Value": "optfleet-control"} in props["Tags"]
    details = small.one("AWS::DLM::LifecyclePolicy")["Properties"]["PolicyDetails"]
    assert details["TargetTags"] == [{"Key": "optfleet:backup", "Value": "optfleet-control"}]
    (schedule,) = details["Schedules"]
    assert schedule["RetainRule"] == {"Count": 7}
    assert schedule["CreateRule"]["Interval"] == 24
    # No other taggable resource carries the backup tag (root volumes are not snapshotted).
    tagged = [
        k
        for k, v in small.template["Resources"].items()
        if "optfleet:backup" in json.dumps(v.get("Properties", {}).get("Tags", []))
    ]
    assert tagged == [next(iter(small.resources("AWS::EC2::Volume")))]


def test_small_is_a_group_of_one_pinned_to_the_volume_subnet(small: Synthesized) -> None:
    group = small.one("AWS::AutoScaling::AutoScalingGroup")["Properties"]
    assert (group["MinSize"], group["MaxSize"]) == ("1", "1")
    (subnet,) = group["VPCZoneIdentifier"]
    interface = small.one("AWS::EC2::NetworkInterface")["Properties"]
    assert interface["SubnetId"] == subnet
    volume_zone = small.one("AWS::EC2::Volume")["Properties"]["AvailabilityZone"]
    subnet_zone = small.template["Resources"][subnet["Ref"]]["Properties"]["AvailabilityZone"]
    assert volume_zone == subnet_zone


def test_small_may_attach_only_its_volume_and_interface(small: Synthesized) -> None:
    volume_id = next(iter(small.resources("AWS::EC2::Volume")))
    interface_id = next(iter(small.resources("AWS::EC2::NetworkInterface")))
    attach = [s for s in _statements(small) if "ec2:AttachVolume" in _as_list(s["Action"])]
    resources = sorted(flatten(r) for s in attach for r in _as_list(s["Resource"]))
    assert any(r.endswith(f":volume/<{volume_id}>") for r in resources)
    instance_rules = [s for s in attach if flatten(s["Resource"]).endswith(":instance/*")]
    (instance_rule,) = instance_rules
    assert instance_rule["Condition"] == {
        "StringEquals": {"aws:ResourceTag/Stack": "optfleet-control"}
    }
    eni = [s for s in _statements(small) if _as_list(s["Action"]) == ["ec2:AttachNetworkInterface"]]
    assert flatten(eni[0]["Resource"]).endswith(f":network-interface/<{interface_id}>")
    for statement in _statements(small):
        assert all("*" not in a for a in _as_list(statement["Action"])), statement
        if "*" in _as_list(statement["Resource"]):
            assert set(_as_list(statement["Action"])) <= {
                "ec2:DescribeVolumes",
                "ec2:DescribeNetworkInterfaces",
            }


def test_generated_token_secret_is_read_by_the_role_and_never_in_user_data(
    small: Synthesized,
) -> None:
    (secret_id, secret) = next(iter(small.resources("AWS::SecretsManager::Secret").items()))
    generator = secret["Properties"]["GenerateSecretString"]
    assert generator["PasswordLength"] >= 32
    reads = [
        s for s in _statements(small) if "secretsmanager:GetSecretValue" in _as_list(s["Action"])
    ]
    assert [flatten(s["Resource"]) for s in reads] == [f"<{secret_id}>"]
    script = _user_data(small)
    assert f"TOKEN_SECRET_ARN=<{secret_id}>" in script.replace("'", "")
    assert "OPTFLEET_BOOTSTRAP_TOKEN=" not in script.replace('"OPTFLEET_BOOTSTRAP_TOKEN"', "")
    assert "write-env --out" in script
    assert "python3.11" in script


def test_exports_for_fleets(small: Synthesized) -> None:
    outputs = small.template["Outputs"]
    for key in ("ApiUrl", "TokenSecretArn", "VpcId", "SubnetIds", "ClientSecurityGroupId"):
        assert outputs[key]["Export"] == {"Name": f"optfleet-control:{key}"}
    interface_id = next(iter(small.resources("AWS::EC2::NetworkInterface")))
    assert flatten(outputs["ApiUrl"]["Value"]) == (
        f"http://<{interface_id}.PrimaryPrivateIpAddress>:8080"
    )


@pytest.mark.parametrize("name", ["small", "ha"])
def test_logs_with_retention_and_an_unhealthy_alarm(name: str, request: Any) -> None:
    stack: Synthesized = request.getfixturevalue(name)
    groups = {
        g["Properties"]["LogGroupName"]: g["Properties"].get("RetentionInDays")
        for g in stack.resources("AWS::Logs::LogGroup").values()
    }
    assert groups["/optfleet/control/server"] == 30
    assert all(days == 30 for days in groups.values())
    alarms = {
        a["Properties"]["MetricName"] for a in stack.resources("AWS::CloudWatch::Alarm").values()
    }
    assert {"GroupInServiceInstances", "StatusCheckFailed"} <= alarms
    if name == "ha":
        assert "UnHealthyHostCount" in alarms
    assert "journal_shipper --unit optfleet-server.service" in _user_data(stack)


def test_ha_runs_two_servers_over_an_encrypted_protected_backed_up_database(
    ha: Synthesized,
) -> None:
    group = ha.one("AWS::AutoScaling::AutoScalingGroup")["Properties"]
    assert (group["MinSize"], group["MaxSize"]) == ("2", "2")
    assert len(group["VPCZoneIdentifier"]) == 2
    assert group["TargetGroupARNs"]
    db = ha.one("AWS::RDS::DBInstance")
    assert db["DeletionPolicy"] == "Snapshot"
    props = db["Properties"]
    assert props["StorageEncrypted"] is True
    assert props["DeletionProtection"] is True
    assert props["BackupRetentionPeriod"] == 7
    assert props["MultiAZ"] is True
    assert props["PubliclyAccessible"] is False
    assert props["Engine"] == "postgres"
    # Generated credentials in Secrets Manager, read by the servers at boot.
    db_secret = [
        k
        for k, v in ha.resources("AWS::SecretsManager::Secret").items()
        if "GenerateSecretString" in v["Properties"]
        and "username" in json.dumps(v["Properties"]["GenerateSecretString"])
    ]
    assert len(db_secret) == 1
    script = _user_data(ha).replace("'", "")
    assert "DB_SECRET_ARN=<" in script and "DB_SECRET_ARN=\n" not in script
    # Two servers share the database's connections: 2 x 1.5 x 25 stays under db.t4g.micro's ~80.
    assert "DB_POOL_SIZE=25\n" in script
    assert ha.resources("AWS::EC2::Volume") == {}
    db_rules = [r for r in _ingress(ha) if r["FromPort"] == 5432]
    assert len(db_rules) == 1 and "SourceSecurityGroupId" in db_rules[0]


def test_delete_data_drops_retention_and_protection(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    stack = _synth(
        {"size": "ha", "delete_data": "true"}, tmp_path_factory.mktemp("del"), "optfleet-control"
    )
    db = stack.one("AWS::RDS::DBInstance")
    assert db["DeletionPolicy"] == "Delete"
    assert db["Properties"]["DeletionProtection"] is False


def test_wired_fleet_imports_everything_from_the_control_plane(wired_fleet: Synthesized) -> None:
    def imported(key: str) -> dict[str, str]:
        return {"Fn::ImportValue": f"optfleet-control:{key}"}

    data = wired_fleet.one("AWS::EC2::LaunchTemplate")["Properties"]["LaunchTemplateData"]
    script = json.dumps(data["UserData"])
    assert json.dumps(imported("ApiUrl")) in script
    assert json.dumps(imported("TokenSecretArn")) in script
    assert imported("ClientSecurityGroupId") in data["SecurityGroupIds"]
    group = wired_fleet.one("AWS::AutoScaling::AutoScalingGroup")["Properties"]
    assert group["VPCZoneIdentifier"] == {"Fn::Split": [",", imported("SubnetIds")]}
    (own_group,) = wired_fleet.resources("AWS::EC2::SecurityGroup").values()
    assert own_group["Properties"]["VpcId"] == imported("VpcId")
    assert "SecurityGroupIngress" not in own_group["Properties"]
    reads = [
        s
        for s in _statements(wired_fleet)
        if "secretsmanager:GetSecretValue" in _as_list(s["Action"])
    ]
    assert [s["Resource"] for s in reads] == [imported("TokenSecretArn")]
    assert wired_fleet.resources("AWS::EC2::VPC") == {}


def test_cfn_lint_is_clean(
    small: Synthesized, ha: Synthesized, public: Synthesized, wired_fleet: Synthesized
) -> None:
    templates = [
        str(s.outdir / f"{name}.template.json")
        for s, name in (
            (small, "optfleet-control"),
            (ha, "optfleet-control"),
            (public, "optfleet-control"),
            (wired_fleet, "optfleet-61"),
        )
    ]
    result = subprocess.run(
        [str(VENV_BIN / "cfn-lint"), *templates],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("context", "setting", "fragment"),
    [
        ({"size": "large"}, "size", "expected one of small, ha"),
        ({"size": "ha", "server_count": "1"}, "server_count", "at least 2"),
        ({"server_count": "3"}, "server_count", "exactly 1"),
        ({"instance_type": "t4g.small"}, "instance_type", "x86_64"),
        ({"domain": "hpo.example.com"}, "certificate_arn", "go together"),
        ({"certificate_arn": "arn:nope", "domain": "a.example.com"}, "certificate_arn", "ACM"),
        ({"vpc_id": "vpc-0123abcd", "subnet_ids": "subnet-0123abcd"}, "subnet_ids", "at least 2"),
        (
            {"vpc_id": "vpc-0123abcd", "subnet_ids": "subnet-0123abcd,subnet-0123abce"},
            "availability_zone",
            "required",
        ),
        ({"delete_data": "maybe"}, "delete_data", "true or false"),
        ({"token_secret": "optfleet/token"}, "token_secret", "complete ARN"),
    ],
)
def test_bad_control_settings_name_the_setting(
    context: dict[str, str], setting: str, fragment: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_control_settings(context)
    assert caught.value.setting == setting
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_fleet_with_control_rejects_the_settings_it_imports() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(
            {"experiment_id": "1", "control": "optfleet-control", "api_url": "http://x:8080"},
            cwd=REPO,
        )
    assert caught.value.setting == "api_url"
    assert "control plane" in str(caught.value)
