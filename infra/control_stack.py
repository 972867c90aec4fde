"""ControlPlaneStack (`optfleet-control`): network + server wheelhouse + ControlPlane + exports."""

from __future__ import annotations

from typing import Any, Optional

from aws_cdk import Annotations, CfnOutput, Environment, Fn, Stack, Tags
from constructs import Construct

from infra import control_exports
from infra.assets import AgentWheelhouse
from infra.control_plane import ControlPlane
from infra.control_settings import ControlSettings
from infra.network import FleetNetwork, deploy_time_azs
from infra.wheelhouse import WheelhousePaths


class ControlPlaneStack(Stack):
    """The suggestion server the fleets talk to; `cdk destroy` keeps its data unless
    ``delete_data`` was set. Environment-agnostic unless account and region are given."""

    @property
    def availability_zones(self) -> list[str]:
        """Two AZs chosen at deploy time, pinned environment or not: synth needs no credentials."""
        return deploy_time_azs()

    def __init__(
        self,
        scope: Construct,
        *,
        settings: ControlSettings,
        wheelhouse_paths: Optional[WheelhousePaths] = None,
        **kwargs: Any,
    ) -> None:
        if settings.account and settings.region:
            kwargs.setdefault("env", Environment(account=settings.account, region=settings.region))
        super().__init__(
            scope,
            settings.stack_name,
            stack_name=settings.stack_name,
            description=f"optfleet control plane ({settings.size}): the suggestion server",
            **kwargs,
        )
        for key, value in {
            "Project": "optfleet",
            "ManagedBy": "optfleet",
            "Stack": settings.stack_name,
            "Component": "control-plane",
        }.items():
            Tags.of(self).add(key, value)

        self.network = FleetNetwork(
            self, "Network", vpc_id=settings.vpc_id, subnet_ids=settings.subnet_ids
        )
        subnets = (
            list(self.network.vpc_subnets.subnets or [])
            if settings.vpc_id
            else list(self.network.vpc.public_subnets)
        )
        self.wheelhouse = AgentWheelhouse(
            self, "Wheelhouse", paths=wheelhouse_paths, include_server=True
        )
        self.control = ControlPlane(
            self,
            "Control",
            settings=settings,
            vpc=self.network.vpc,
            subnets=subnets,
            wheelhouse=self.wheelhouse,
        )
        if settings.delete_data:
            Annotations.of(self).add_warning_v2(
                "optfleet:delete_data",
                "delete_data=true: `cdk destroy` deletes the data volume / database with no "
                "final snapshot",
            )
        name = settings.stack_name
        for key, value, description in (
            (control_exports.API_URL, self.control.api_url, "API base URL (no /v1)"),
            (
                control_exports.TOKEN_SECRET_ARN,
                self.control.token_secret.secret_arn,
                "Secrets Manager secret holding the API token",
            ),
            (control_exports.VPC_ID, self.network.vpc.vpc_id, "VPC of the control plane"),
            (
                control_exports.SUBNET_IDS,
                Fn.join(",", [s.subnet_id for s in subnets]),
                "subnets fleets launch into (comma-separated)",
            ),
            (
                control_exports.CLIENT_SECURITY_GROUP_ID,
                self.control.client_security_group.security_group_id,
                "security group fleets attach to reach the API",
            ),
        ):
            CfnOutput(
                self,
                key,
                value=value,
                description=description,
                export_name=control_exports.export_name(name, key),
            )
        CfnOutput(
            self,
            "ServerGroupName",
            value=self.control.auto_scaling_group.auto_scaling_group_name,
            description="Auto Scaling group of the server(s): find the instance for SSM",
        )
        CfnOutput(self, "LogGroupName", value=self.control.log_group.log_group_name)
        if self.control.data_volume is not None:
            CfnOutput(
                self,
                "DataVolumeId",
                value=self.control.data_volume.volume_id,
                description="EBS volume holding the SQLite database (kept on destroy)",
            )
        if self.control.load_balancer is not None:
            CfnOutput(
                self,
                "LoadBalancerDnsName",
                value=self.control.load_balancer.load_balancer_dns_name,
                description="point the domain's CNAME here (public) / SSM forwarding target",
            )
