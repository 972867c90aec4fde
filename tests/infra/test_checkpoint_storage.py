"""The fleet's checkpoint bucket on the synthesized template: encrypted, private, TLS-only, a
lifecycle rule, deleted with the stack, tagged; the fleet's role may use only its experiment's
prefix (checked by evaluating the bucket policy for this and another experiment's keys); the
user data hands the location to the agents; cdk-nag has nothing unacknowledged."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest

from tests.infra.support import Synthesized, flatten, synth

EXPERIMENT = "42"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth({"experiment_id": EXPERIMENT}, tmp_path_factory.mktemp("checkpoints"))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _bucket_id(fleet: Synthesized) -> str:
    (logical_id,) = fleet.resources("AWS::S3::Bucket")
    return logical_id


def _role_id(fleet: Synthesized) -> str:
    (logical_id,) = fleet.resources("AWS::IAM::Role")
    return logical_id


def _statements(fleet: Synthesized) -> list[dict[str, Any]]:
    policy = fleet.one("AWS::S3::BucketPolicy")["Properties"]
    assert policy["Bucket"] == {"Ref": _bucket_id(fleet)}
    return list(policy["PolicyDocument"]["Statement"])


def allowed(
    fleet: Synthesized, principal: str, action: str, resource: str, prefix: str = ""
) -> bool:
    """Whether the bucket policy lets ``principal`` (a role's logical id) do ``action`` on
    ``resource`` (``<bucket arn>`` or ``<bucket arn>/key``), ``prefix`` being a list's
    ``s3:prefix``: an Allow must match and no Deny may (IAM's evaluation, for this policy)."""
    verdicts = []
    for statement in _statements(fleet):
        principals = [flatten(p) for p in _as_list(statement["Principal"].get("AWS", []))]
        if statement["Principal"] != {"AWS": "*"} and f"<{principal}.Arn>" not in principals:
            continue
        if action not in _as_list(statement["Action"]) and "s3:*" not in statement["Action"]:
            continue
        patterns = [flatten(r) for r in _as_list(statement["Resource"])]
        if not any(fnmatch.fnmatchcase(resource, p) for p in patterns):
            continue
        conditions = statement.get("Condition", {})
        if "Bool" in conditions:
            continue  # aws:SecureTransport=false: these requests all use TLS
        like = conditions.get("StringLike", {}).get("s3:prefix")
        if like is not None and not any(fnmatch.fnmatchcase(prefix, p) for p in _as_list(like)):
            continue
        verdicts.append(statement["Effect"])
    return "Allow" in verdicts and "Deny" not in verdicts


def test_the_bucket_is_encrypted_private_expiring_and_goes_with_the_stack(
    fleet: Synthesized,
) -> None:
    bucket = fleet.one("AWS::S3::Bucket")
    assert bucket["DeletionPolicy"] == "Delete" and bucket["UpdateReplacePolicy"] == "Delete"
    props = bucket["Properties"]
    assert "BucketName" not in props  # CloudFormation names it: no clash between experiments
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and rule["ExpirationInDays"] == 30
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    tags = {t["Key"]: t["Value"] for t in props["Tags"]}
    assert tags["Experiment"] == EXPERIMENT and tags["ManagedBy"] == "optfleet"
    assert tags["Stack"] == f"optfleet-{EXPERIMENT}"
    # No auto-delete custom resource: no Lambda function, no second role in the fleet.
    assert not fleet.resources("AWS::Lambda::Function")


def test_only_tls_requests_are_accepted(fleet: Synthesized) -> None:
    [deny] = [s for s in _statements(fleet) if s["Effect"] == "Deny"]
    assert deny["Principal"] == {"AWS": "*"} and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_fleet_role_may_use_only_its_experiments_prefix(fleet: Synthesized) -> None:
    role, arn = _role_id(fleet), f"<{_bucket_id(fleet)}.Arn>"
    mine = f"{arn}/checkpoints/{EXPERIMENT}/7/manifest.json"
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"):
        assert allowed(fleet, role, action, mine), action
        for other in (
            f"{arn}/checkpoints/43/7/manifest.json",
            f"{arn}/checkpoints/4/x",
            f"{arn}/x",
        ):
            assert not allowed(fleet, role, action, other), (action, other)
    assert allowed(fleet, role, "s3:ListBucket", arn, f"checkpoints/{EXPERIMENT}/7/")
    assert not allowed(fleet, role, "s3:ListBucket", arn, "checkpoints/43/")
    assert not allowed(fleet, role, "s3:ListBucket", arn, "")
    for action in ("s3:PutBucketPolicy", "s3:DeleteBucket", "s3:PutObjectAcl"):
        assert not allowed(fleet, role, action, mine) and not allowed(fleet, role, action, arn)
    # Nobody else is granted anything.
    for statement in _statements(fleet):
        if statement["Effect"] == "Allow":
            assert flatten(statement["Principal"]["AWS"]) == f"<{role}.Arn>"


def test_the_user_data_gives_the_agents_the_location(fleet: Synthesized) -> None:
    data = fleet.one("AWS::EC2::LaunchTemplate")["Properties"]["LaunchTemplateData"]
    script = flatten(data["UserData"])
    assert f"'OPTFLEET_CHECKPOINT_S3=s3://<{_bucket_id(fleet)}>/checkpoints'" in script


def test_cdk_nag_acknowledges_only_the_access_logs_with_a_reason(fleet: Synthesized) -> None:
    report = json.loads((fleet.outdir / "validation-report.json").read_text())
    (plugin,) = report["pluginReports"]
    assert plugin["conclusion"] == "success" and plugin["violations"] == []
    on_bucket = [s for s in plugin["suppressedViolations"] if "Checkpoints" in json.dumps(s)]
    assert [s["ruleName"] for s in on_bucket] == ["AwsSolutions-S1"], on_bucket
    assert len(on_bucket[0]["reason"]) > 40
