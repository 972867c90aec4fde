"""ExperimentFleetStack (`optfleet-<experiment_id>`): network + assets + WorkerFleet + outputs."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, cast

from aws_cdk import Annotations, CfnOutput, Environment, Fn, Stack, Tags
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from infra import control_exports
from infra.assets import AgentWheelhouse, WorkloadAsset
from infra.cost_budget import ExperimentBudget
from infra.network import FleetNetwork, deploy_time_azs
from infra.settings import FleetSettings
from infra.wheelhouse import WheelhousePaths
from infra.worker_fleet import WorkerFleet, fleet_tags


class ExperimentFleetStack(Stack):
    """Everything one experiment's fleet needs; `cdk destroy` removes all of it.

    Environment-agnostic unless ``settings.account`` and ``settings.region`` are given, so
    `cdk synth` needs no AWS credentials.
    """

    @property
    def availability_zones(self) -> list[str]:
        """Two AZs chosen at deploy time, pinned environment or not: synth needs no credentials."""
        return deploy_time_azs()

    def __init__(
        self,
        scope: Construct,
        *,
        settings: FleetSettings,
        wheelhouse_paths: Optional[WheelhousePaths] = None,
        **kwargs: Any,
    ) -> None:
        if settings.account and settings.region:
            kwargs.setdefault("env", Environment(account=settings.account, region=settings.region))
        super().__init__(
            scope,
            settings.stack_name,
            stack_name=settings.stack_name,
            description=f"optfleet worker fleet for experiment {settings.experiment_id}",
            **kwargs,
        )
        tags = fleet_tags(settings, self.stack_name)
        for key, value in tags.items():
            Tags.of(self).add(key, value)

        control_subnets: Optional[list[str]] = None
        if settings.control is not None:
            # API URL, token secret, VPC and subnets come from the control plane's exports.
            control = settings.control
            control_subnets = Fn.split(
                ",", control_exports.import_value(control, control_exports.SUBNET_IDS)
            )
            settings = dataclasses.replace(
                settings,
                api_url=control_exports.import_value(control, control_exports.API_URL),
                token_secret=control_exports.import_value(
                    control, control_exports.TOKEN_SECRET_ARN
                ),
            )
            self.network = FleetNetwork(
                self,
                "Network",
                vpc_id=control_exports.import_value(control, control_exports.VPC_ID),
                subnet_ids=[Fn.select(0, control_subnets)],
            )
        else:
            self.network = FleetNetwork(
                self, "Network", vpc_id=settings.vpc_id, subnet_ids=settings.subnet_ids
            )
        self.wheelhouse = AgentWheelhouse(self, "Wheelhouse", paths=wheelhouse_paths)
        self.workload = (
            WorkloadAsset(
                self,
                "Workload",
                workload=settings.workload,
                architecture=settings.architecture,
                paths=wheelhouse_paths,
            )
            if settings.workload is not None
            else None
        )
        self.fleet = WorkerFleet(
            self,
            "Fleet",
            settings=settings,
            vpc=self.network.vpc,
            vpc_subnets=self.network.vpc_subnets,
            wheelhouse=self.wheelhouse,
            workload=self.workload,
            tags=tags,
        )
        if settings.control is not None and control_subnets is not None:
            self.fleet.launch_template.add_security_group(
                ec2.SecurityGroup.from_security_group_id(
                    self,
                    "ControlClientSecurityGroup",
                    control_exports.import_value(
                        settings.control, control_exports.CLIENT_SECURITY_GROUP_ID
                    ),
                    allow_all_outbound=False,
                    mutable=False,
                )
            )
            # Every subnet the control plane exports (their number is known only at deploy).
            cast(
                autoscaling.CfnAutoScalingGroup,
                self.fleet.auto_scaling_group.node.default_child,
            ).add_property_override("VPCZoneIdentifier", control_subnets)
        if settings.max_cost_usd is not None and settings.budget_alert_email is not None:
            self.budget = ExperimentBudget(
                self,
                "CostBudget",
                experiment_id=settings.experiment_id,
                limit_usd=settings.max_cost_usd,
                email=settings.budget_alert_email,
            )
        for missing, consequence in (
            ("api_url", "the agents have no API to ask for suggestions"),
            ("token_secret", "the agents have no API token"),
            ("command", "the agents have no evaluation command"),
        ):
            if getattr(settings, missing) is None:
                Annotations.of(self).add_warning_v2(
                    f"optfleet:{missing}", f"setting {missing!r} is not set: {consequence}"
                )
        CfnOutput(
            self, "ExperimentId", value=settings.experiment_id, description="optfleet experiment id"
        )
        CfnOutput(
            self,
            "AutoScalingGroupName",
            value=self.fleet.auto_scaling_group.auto_scaling_group_name,
            description="Auto Scaling group running the workers",
        )
        CfnOutput(
            self,
            "LogGroupName",
            value=self.fleet.log_group.log_group_name,
            description="CloudWatch log group of the agents",
        )
