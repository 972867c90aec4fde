"""CheckpointStorage: the experiment's own S3 bucket for checkpoint snapshots (docs/agent.md,
"Checkpoints that travel"; docs/infra.md, "Checkpoint storage").

Encrypted (SSE-S3), all public access blocked, TLS-only, objects expiring after a lifecycle
period, deleted by `cdk destroy`, tagged like the rest of the fleet. The agents delete a
suggestion's snapshots once its observation lands, so a finished experiment's bucket is empty
and goes with the stack; no auto-delete custom resource (a Lambda function and a second role in
every fleet) is added for the rest: docs/infra.md says how to empty a bucket a fleet destroyed
mid-run leaves behind. The fleet's role
is granted, in the bucket's own policy, reading, writing and deleting under this experiment's
prefix only, and listing only that prefix.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.nag import acknowledge

PREFIX = "checkpoints"
# Snapshots of an open suggestion are rewritten at every checkpoint; an object this old belongs
# to a suggestion nobody has touched for a month (or to a crashed upload).
EXPIRE_AFTER_DAYS = 30
ABORT_UPLOADS_AFTER_DAYS = 1
OBJECT_ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]


class CheckpointStorage(Construct):
    """One experiment's checkpoint bucket; ``location`` is what the agents get as
    ``OPTFLEET_CHECKPOINT_S3`` (they add ``<experiment>/<suggestion>/``)."""

    def __init__(self, scope: Construct, construct_id: str, *, experiment_id: str) -> None:
        super().__init__(scope, construct_id)
        self.experiment_id = experiment_id
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=RemovalPolicy.DESTROY,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireSnapshots",
                    expiration=Duration.days(EXPIRE_AFTER_DAYS),
                    abort_incomplete_multipart_upload_after=Duration.days(ABORT_UPLOADS_AFTER_DAYS),
                )
            ],
        )
        acknowledge(
            self.bucket,
            "S1",
            "Snapshots are transient copies of the fleet's own checkpoints, deleted once each "
            "observation lands; server access logs would need a second bucket per experiment. "
            "CloudTrail data events can audit the bucket when needed.",
        )

    @property
    def experiment_prefix(self) -> str:
        """The keys this experiment's agents use: ``checkpoints/<experiment id>/``."""
        return f"{PREFIX}/{self.experiment_id}/"

    @property
    def location(self) -> str:
        return f"s3://{self.bucket.bucket_name}/{PREFIX}"

    def grant_read_write(self, role: iam.IRole) -> None:
        """``role`` may read, write and delete under the experiment's prefix, and list only it."""
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="FleetReadsAndWritesItsExperimentsSnapshots",
                principals=[iam.ArnPrincipal(role.role_arn)],
                actions=OBJECT_ACTIONS,
                resources=[self.bucket.arn_for_objects(f"{self.experiment_prefix}*")],
            )
        )
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="FleetListsItsExperimentsSnapshots",
                principals=[iam.ArnPrincipal(role.role_arn)],
                actions=["s3:ListBucket"],
                resources=[self.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{self.experiment_prefix}*"]}},
            )
        )
