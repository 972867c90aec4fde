"""WorkerFleet: the reusable L3 construct for one experiment's EC2 workers.

It builds the security group (no ingress), the least-privilege instance role, the agent's log
group, the launch template (IMDSv2 only, encrypted gp3 root, tags on instance, volume and network
interface, no key pair) and the Auto Scaling group (mixed instances policy for Spot or several
instance types). Import it into your own CDK app::

    from infra.settings import load_settings
    from infra.worker_fleet import WorkerFleet
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional, cast

import jsii
from aws_cdk import Annotations, ArnFormat, Aws, RemovalPolicy, Stack, Tags
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.assets import AgentWheelhouse, WorkloadAsset
from infra.checkpoint_storage import CheckpointStorage
from infra.nag import acknowledge
from infra.settings import FleetSettings
from infra.user_data import agent_settings, render_user_data

# Amazon Linux 2023, resolved by CloudFormation from this public SSM parameter at deploy time.
AL2023_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"
HTTPS = 443


@jsii.implements(ec2.IMachineImage)
class _FixedImage:
    """An AMI id that holds in every region the stack is deployed to (no lookup, no mapping)."""

    def __init__(self, image_id: str) -> None:
        self.image_id = image_id

    def get_image(self, scope: Construct) -> ec2.MachineImageConfig:
        return ec2.MachineImageConfig(
            image_id=self.image_id,
            os_type=ec2.OperatingSystemType.LINUX,
            user_data=ec2.UserData.for_linux(),
        )


def machine_image_for(settings: FleetSettings) -> ec2.IMachineImage:
    """The AMI the workers boot: an AMI id, a public SSM parameter, or Amazon Linux 2023."""
    if settings.ami is not None and settings.ami.startswith("ami-"):
        return _FixedImage(settings.ami)
    parameter = settings.ami or AL2023_PARAMETER.format(arch=settings.architecture)
    return ec2.MachineImage.from_ssm_parameter(parameter, os=ec2.OperatingSystemType.LINUX)


def fleet_tags(settings: FleetSettings, stack_name: str) -> dict[str, str]:
    """The tags on every resource, instance, volume and network interface of the fleet."""
    return {
        **settings.tags,
        "Experiment": settings.experiment_id,
        "Project": settings.project,
        "ManagedBy": "optfleet",
        "Stack": stack_name,
    }


class WorkerFleet(Construct):
    """One experiment's worker fleet.

    Attributes others may need: ``security_group``, ``role``, ``log_group``, ``launch_template``,
    ``auto_scaling_group``, ``checkpoints`` (the checkpoint bucket).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: FleetSettings,
        vpc: ec2.IVpc,
        vpc_subnets: ec2.SubnetSelection,
        wheelhouse: AgentWheelhouse,
        workload: Optional[WorkloadAsset] = None,
        tags: Optional[Mapping[str, str]] = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.settings = settings
        self.tags = dict(
            tags if tags is not None else fleet_tags(settings, Stack.of(self).stack_name)
        )
        for key, value in self.tags.items():
            Tags.of(self).add(key, value)

        self.security_group = self._security_group(vpc)
        self.log_group = self._log_group()
        self.role = self._role()
        wheelhouse.grant_read_object(self.role)
        if workload is not None:
            workload.grant_read_object(self.role)
        # Snapshots of the evaluations' checkpoints, so an adopter continues where they stopped.
        self.checkpoints = CheckpointStorage(
            self, "Checkpoints", experiment_id=settings.experiment_id
        )
        self.checkpoints.grant_read_write(self.role)

        script = render_user_data(
            experiment_id=settings.experiment_id,
            agent_pairs=agent_settings(
                settings, region=Aws.REGION, checkpoint_s3=self.checkpoints.location
            ),
            wheelhouse=wheelhouse.location,
            workload=workload.location if workload is not None else None,
            region=Aws.REGION,
            log_group_name=self.log_group_name,
        )
        self.launch_template = self._launch_template(ec2.UserData.custom(script))
        self.auto_scaling_group = self._auto_scaling_group(vpc, vpc_subnets)
        Annotations.of(self.auto_scaling_group).acknowledge_warning(
            "@aws-cdk/aws-autoscaling:desiredCapacitySet",
            "Intended: every deploy sets the group to fleet_size; that is how a fleet is resized.",
        )
        acknowledge(
            self.auto_scaling_group,
            "AS3",
            "Scaling events of a worker fleet are routine (Spot reclaims, when_done); "
            "operators watch `optfleet status` and the agents' log group rather than "
            "per-event notifications.",
        )
        self._when_done_policy()

    @property
    def uses_mixed_instances(self) -> bool:
        """Spot capacity or several instance types need a mixed instances policy."""
        return self.settings.uses_spot or len(self.settings.instance_types) > 1

    def _security_group(self, vpc: ec2.IVpc) -> ec2.SecurityGroup:
        group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description=(
                f"optfleet {self.settings.experiment_id} workers: no inbound; HTTPS and the API out"
            ),
            allow_all_outbound=False,
        )
        # AWS APIs the agent and boot script call (S3, Secrets Manager, CloudWatch Logs, EC2,
        # Auto Scaling, SSM) and the package repositories all speak HTTPS. DNS, NTP and IMDS go to
        # the VPC resolver and link-local addresses that security groups do not filter.
        group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS), "HTTPS to AWS APIs and the optfleet API"
        )
        port = self.settings.api_port
        if port is not None and port != HTTPS:
            group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(port), "the optfleet API")
        return group

    @property
    def log_group_name(self) -> str:
        """Name of the agents' CloudWatch log group (one per experiment)."""
        return f"/optfleet/{self.settings.experiment_id}/agent"

    def _log_group(self) -> logs.LogGroup:
        group = logs.LogGroup(
            self,
            "AgentLogs",
            log_group_name=self.log_group_name,
            # Named after the experiment, so it must go with the stack or a redeploy would clash.
            removal_policy=RemovalPolicy.DESTROY,
        )
        cfn = cast(logs.CfnLogGroup, group.node.default_child)
        cfn.retention_in_days = self.settings.log_retention_days
        return group

    def _role(self) -> iam.Role:
        stack = Stack.of(self)
        role = iam.Role(
            self,
            "InstanceRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description=f"optfleet {self.settings.experiment_id} worker instances",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore")
            ],
        )
        # These have no resource-level permissions: "*" is the only resource AWS takes. The
        # price calls let each agent cost its work and check the dollar cap.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "ec2:DescribeInstances",
                    "ec2:DescribeSpotPriceHistory",
                    "pricing:GetProducts",
                ],
                resources=["*"],
            )
        )
        stream_arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"{self.log_group_name}:log-stream:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn, stream_arn],
            )
        )
        secret_arns = self._token_secret_arns()
        if secret_arns:
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue"], resources=secret_arns
                )
            )
        acknowledge(
            role,
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]",
            "AWS's own minimal policy for Session Manager and SSM Agent; it replaces SSH "
            "(no key pair, no inbound port) and AWS keeps it current with the agent's needs.",
        )
        acknowledge(
            role,
            "IAM5[Resource::*]",
            "ec2:DescribeInstances (adoption of dead workers' suggestions, the fleet's spend), "
            "ec2:DescribeSpotPriceHistory and pricing:GetProducts (prices) support no "
            "resource-level permissions; AWS accepts only '*' for them.",
        )
        acknowledge(
            role,
            f"IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:"
            f"{self.log_group_name}:log-stream:*]",
            "Log streams are named after instances that do not exist yet; the wildcard "
            "stays inside this experiment's one log group.",
        )
        return role

    def _token_secret_arns(self) -> list[str]:
        """ARNs matching the one token secret: Secrets Manager appends "-" and 6 random
        characters to a secret's name, so a name or partial ARN gets "-??????". A complete ARN
        cannot be told from a partial one ending in a 6-letter word, so an ARN gets both forms."""
        secret = self.settings.token_secret
        if secret is None:
            return []
        if self.settings.control is not None:
            return [secret]  # the control plane exports the secret's complete ARN
        if secret.startswith("arn:"):
            return [secret, f"{secret}-??????"]
        return [
            Stack.of(self).format_arn(
                service="secretsmanager",
                resource="secret",
                resource_name=f"{secret}-??????",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
        ]

    def _launch_template(self, user_data: ec2.UserData) -> ec2.LaunchTemplate:
        settings = self.settings
        template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            machine_image=machine_image_for(settings),
            instance_type=None
            if self.uses_mixed_instances
            else ec2.InstanceType(settings.instance_types[0]),
            user_data=user_data,
            role=self.role,
            security_group=self.security_group,
            http_endpoint=True,
            http_tokens=ec2.LaunchTemplateHttpTokens.REQUIRED,
            http_put_response_hop_limit=1,
            instance_metadata_tags=True,
            block_devices=[
                ec2.BlockDevice(
                    device_name=settings.root_device_name,
                    volume=ec2.BlockDeviceVolume.ebs(
                        settings.root_volume_gb,
                        encrypted=True,
                        volume_type=ec2.EbsDeviceVolumeType.GP3,
                        delete_on_termination=True,
                    ),
                )
            ],
        )
        # CDK tags instances and volumes; network interfaces (and so their ENI costs) need it too.
        tag_list = [{"Key": key, "Value": value} for key, value in sorted(self.tags.items())]
        cfn = cast(ec2.CfnLaunchTemplate, template.node.default_child)
        cfn.add_property_override(
            "LaunchTemplateData.TagSpecifications",
            [
                {"ResourceType": resource_type, "Tags": tag_list}
                for resource_type in ("instance", "volume", "network-interface")
            ],
        )
        return template

    def _auto_scaling_group(
        self, vpc: ec2.IVpc, vpc_subnets: ec2.SubnetSelection
    ) -> autoscaling.AutoScalingGroup:
        settings = self.settings
        capacity: dict[str, Any] = {
            "vpc": vpc,
            "vpc_subnets": vpc_subnets,
            # min 0: `when_done = terminate` shrinks the group one instance at a time.
            "min_capacity": 0,
            "max_capacity": settings.fleet_size,
            "desired_capacity": settings.fleet_size,
        }
        if not self.uses_mixed_instances:
            return autoscaling.AutoScalingGroup(
                self, "Workers", launch_template=self.launch_template, **capacity
            )
        distribution = autoscaling.InstancesDistribution(
            on_demand_base_capacity=settings.on_demand_base,
            on_demand_percentage_above_base_capacity=100 - settings.spot_percentage,
            on_demand_allocation_strategy=autoscaling.OnDemandAllocationStrategy.LOWEST_PRICE,
            spot_allocation_strategy=autoscaling.SpotAllocationStrategy.CAPACITY_OPTIMIZED,
            spot_max_price=None if settings.max_price is None else f"{settings.max_price:g}",
        )
        acknowledge(
            self,
            "EC26",
            "cdk-nag cannot evaluate groups with a MixedInstancesPolicy; the launch template "
            "encrypts the root volume, which the tests assert.",
        )
        return autoscaling.AutoScalingGroup(
            self,
            "Workers",
            mixed_instances_policy=autoscaling.MixedInstancesPolicy(
                launch_template=self.launch_template,
                instances_distribution=distribution,
                launch_template_overrides=[
                    autoscaling.LaunchTemplateOverrides(instance_type=ec2.InstanceType(name))
                    for name in settings.instance_types
                ],
            ),
            capacity_rebalance=settings.uses_spot,
            **capacity,
        )

    def _group_logical_id(self) -> str:
        cfn = cast(autoscaling.CfnAutoScalingGroup, self.auto_scaling_group.node.default_child)
        return Stack.of(self).resolve(cfn.logical_id)  # type: ignore[no-any-return]

    def _when_done_policy(self) -> None:
        """The calls `when_done` makes, scoped to this group and this experiment's instances.

        A separate policy, so the role does not depend on the group that depends on the role.
        """
        action = self.settings.when_done
        if action == "stay":
            return
        stack = Stack.of(self)
        group_arn = stack.format_arn(
            service="autoscaling",
            resource="autoScalingGroup",
            # The group's UUID is only known after creation; its name pins it down.
            resource_name=f"*:autoScalingGroupName/{self.auto_scaling_group.auto_scaling_group_name}",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        # terminate: leave the group, shrinking it; stop: enter Standby first (shrinking it) so
        # that the group does not replace the stopped instance.
        group_actions = (
            ["autoscaling:TerminateInstanceInAutoScalingGroup"]
            if action == "terminate"
            else ["autoscaling:EnterStandby", "autoscaling:ExitStandby"]  # exit: the stop failed
        )
        statements = [
            # Describe* calls take no resource-level permissions in Auto Scaling.
            iam.PolicyStatement(
                actions=["autoscaling:DescribeAutoScalingInstances"], resources=["*"]
            ),
            iam.PolicyStatement(actions=group_actions, resources=[group_arn]),
        ]
        if action == "stop":
            instance_arn = stack.format_arn(service="ec2", resource="instance", resource_name="*")
            statements.append(
                iam.PolicyStatement(
                    actions=["ec2:StopInstances"],
                    resources=[instance_arn],
                    conditions={
                        "StringEquals": {
                            "aws:ResourceTag/Experiment": self.settings.experiment_id,
                            "aws:ResourceTag/ManagedBy": "optfleet",
                        }
                    },
                )
            )
        self.when_done_policy = iam.Policy(
            self, "WhenDonePolicy", statements=statements, roles=[self.role]
        )
        acknowledge(
            self.when_done_policy,
            "IAM5[Resource::*]",
            "autoscaling:DescribeAutoScalingInstances supports no resource-level permissions.",
        )
        acknowledge(
            self.when_done_policy,
            f"IAM5[Resource::arn:<AWS::Partition>:autoscaling:<AWS::Region>:<AWS::AccountId>:"
            f"autoScalingGroup:*:autoScalingGroupName/<{self._group_logical_id()}>]",
            "The group's UUID exists only after creation; the ARN is pinned by the group's name.",
        )
        acknowledge(
            self.when_done_policy,
            "IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*]",
            "Instance ids are unknown until launch; a condition limits StopInstances to instances "
            "tagged with this experiment.",
        )
