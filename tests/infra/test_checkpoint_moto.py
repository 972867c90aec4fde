"""The checkpoint bucket deployed by the real `cdk deploy` to moto's server mode: encrypted,
tagged, and gone after `cdk destroy` once the agents emptied it. moto 5.2.5 does not apply a
template's public access block, lifecycle rules or bucket policy to the bucket it makes;
test_checkpoint_storage.py asserts those on the template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.infra.conftest import MotoServer
from tests.infra.support import REPO, run_cdk
from tests.infra.test_moto_deploy import (  # noqa: F401 - module fixtures
    ACCOUNT,
    REGION,
    _client,
    aws_env,
    existing_network,
)

EXPERIMENT = "4343"
STACK = f"optfleet-{EXPERIMENT}"


def _cdk(verb: list[str], env: dict[str, str], network: tuple[str, list[str]], out: Path) -> None:
    vpc_id, subnet_ids = network
    args = [*verb, STACK, "--output", str(out), "-c", f"experiment_id={EXPERIMENT}"]
    args += ["-c", f"vpc_id={vpc_id}", "-c", f"subnet_ids={','.join(subnet_ids)}"]
    result = run_cdk(args, cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr[-3000:]


def _bucket(cloudformation: Any) -> str:
    resources = cloudformation.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    (name,) = [r["PhysicalResourceId"] for r in resources if r["ResourceType"] == "AWS::S3::Bucket"]
    return str(name)


def test_deployed_bucket_and_destroy_leaves_nothing(
    moto_server: MotoServer,
    aws_env: dict[str, str],  # noqa: F811 - the fixture imported above
    existing_network: tuple[str, list[str]],  # noqa: F811
    tmp_path: Path,
) -> None:
    bootstrap_dir = tmp_path / "bootstrap"  # a folder without cdk.json
    bootstrap_dir.mkdir()
    result = run_cdk(["bootstrap", f"aws://{ACCOUNT}/{REGION}"], cwd=bootstrap_dir, env=aws_env)
    assert result.returncode == 0, result.stderr[-3000:]
    deploy = ["deploy", "--method=direct", "--require-approval", "never"]
    _cdk(deploy, aws_env, existing_network, tmp_path / "cdk.out")
    s3 = _client("s3", moto_server)
    name = _bucket(_client("cloudformation", moto_server))
    rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=name)["TagSet"]}
    assert tags["Experiment"] == EXPERIMENT and tags["ManagedBy"] == "optfleet"
    # What the agents leave once every observation landed: nothing (their deletes, as here).
    key = f"checkpoints/{EXPERIMENT}/7/manifest.json"
    s3.put_object(Bucket=name, Key=key, Body=b"{}")
    s3.delete_object(Bucket=name, Key=key)

    _cdk(["destroy", "--force"], aws_env, existing_network, tmp_path / "cdk.out")
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
