"""The S3 assets instances install from: the agent wheelhouse and the user's workload.

Each exposes the object URL and asset hash the boot script needs, and grants read of exactly its
one S3 object (s3:GetObject on bucket/key, nothing wider).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from infra.user_data import AssetLocation
from infra.wheelhouse import WheelhousePaths, build_wheelhouse, stage_workload


class _ObjectAsset(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, path: Path) -> None:
        super().__init__(scope, construct_id)
        self.asset = s3_assets.Asset(self, "Asset", path=str(path))

    @property
    def location(self) -> AssetLocation:
        """S3 URL and hash of the archive, for the boot script."""
        return AssetLocation(s3_url=self.asset.s3_object_url, asset_hash=self.asset.asset_hash)

    def grant_read_object(self, grantee: iam.IGrantable) -> None:
        """Allow ``grantee`` s3:GetObject on this one asset object."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[self.asset.bucket.arn_for_objects(self.asset.s3_object_key)],
            )
        )


class AgentWheelhouse(_ObjectAsset):
    """optfleet's wheel (built from this checkout at synth time) plus its dependency wheels.

    ``include_server`` ships the suggestion server's wheels too (the control plane's instances).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        paths: Optional[WheelhousePaths] = None,
        include_server: bool = False,
    ) -> None:
        super().__init__(
            scope, construct_id, path=build_wheelhouse(paths, include_server=include_server)
        )


class WorkloadAsset(_ObjectAsset):
    """The user's workload folder, with wheels for its requirements.txt built at synth time."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        workload: Path,
        architecture: str,
        paths: Optional[WheelhousePaths] = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            path=stage_workload(workload, architecture=architecture, paths=paths),
        )
