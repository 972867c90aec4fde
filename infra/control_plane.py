"""ControlPlane: the suggestion server on EC2 that the fleets talk to (`small` or `ha`).

- small: an Auto Scaling group of one in the data volume's AZ; SQLite on a separate encrypted gp3
  volume (kept or snapshotted on delete) that each new instance attaches at boot; a fixed-address
  network interface gives the API a stable private IP; Data Lifecycle Manager snapshots daily.
- ha: two or more servers behind an internal ALB over PostgreSQL on RDS (encrypted, backups,
  deletion protection); credentials generated in Secrets Manager.
Both: a generated API token secret the server registers at boot; ingress to the API only from
the exported client security group (or 443 from anywhere when a public domain is asked for);
server logs in CloudWatch with retention; an alarm when the server is unhealthy.
"""

from __future__ import annotations

from typing import Optional, cast

from aws_cdk import ArnFormat, Aws, CfnTag, Duration, RemovalPolicy, Size, Stack, Tags
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dlm as dlm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.assets import AgentWheelhouse
from infra.control_settings import ControlSettings
from infra.control_user_data import render_control_user_data
from infra.nag import acknowledge
from infra.worker_fleet import AL2023_PARAMETER

HTTPS = 443
POSTGRES = 5432
LOG_GROUP_NAME = "/optfleet/control/server"
BACKUP_TAG = "optfleet:backup"
DB_INSTANCE_ID = "optfleet-control-db"


class ControlPlane(Construct):
    """The control plane's resources; ``api_url``, ``token_secret``, ``client_security_group``
    and the network are what fleets need (the stack exports them)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: ControlSettings,
        vpc: ec2.IVpc,
        subnets: list[ec2.ISubnet],
        wheelhouse: AgentWheelhouse,
    ) -> None:
        super().__init__(scope, construct_id)
        self.settings = settings
        self.vpc = vpc
        self.subnets = subnets
        self.data_removal = RemovalPolicy.DESTROY if settings.delete_data else RemovalPolicy.RETAIN
        # RDS: a final snapshot rather than a running (billed) instance left behind.
        self.database_removal = (
            RemovalPolicy.DESTROY if settings.delete_data else RemovalPolicy.SNAPSHOT
        )

        self.token_secret = self._token_secret()
        self.client_security_group = ec2.SecurityGroup(
            self,
            "ClientSecurityGroup",
            vpc=vpc,
            description="optfleet fleets: attach to reach the control-plane API (exported)",
            allow_all_outbound=False,
        )
        self.server_security_group = ec2.SecurityGroup(
            self,
            "ServerSecurityGroup",
            vpc=vpc,
            description="optfleet control-plane servers: API only from the fleet client group",
            allow_all_outbound=False,
        )
        # AWS APIs (S3, Secrets Manager, EC2, CloudWatch Logs, SSM) and the AL2023 repositories.
        self.server_security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS), "HTTPS to AWS APIs and the OS repositories"
        )
        self.log_group = logs.LogGroup(
            self,
            "ServerLogs",
            log_group_name=LOG_GROUP_NAME,
            removal_policy=RemovalPolicy.DESTROY,
        )
        cast(
            logs.CfnLogGroup, self.log_group.node.default_child
        ).retention_in_days = settings.log_retention_days
        self.role = self._role()
        wheelhouse.grant_read_object(self.role)
        self.token_secret.grant_read(self.role)

        self.data_volume: Optional[ec2.IVolume] = None
        self.interface: Optional[ec2.CfnNetworkInterface] = None
        self.database: Optional[rds.DatabaseInstance] = None
        self.load_balancer: Optional[elbv2.ApplicationLoadBalancer] = None
        self.target_group: Optional[elbv2.ApplicationTargetGroup] = None
        if settings.is_ha:
            self._database()
        else:
            self._data_volume_and_interface()

        script = render_control_user_data(
            size=settings.size,
            wheelhouse=wheelhouse.location,
            region=Aws.REGION,
            log_group_name=LOG_GROUP_NAME,
            api_port=settings.api_port,
            token_secret_arn=self.token_secret.secret_arn,
            data_volume_id=self.data_volume.volume_id if self.data_volume else "",
            interface_id=self.interface.ref if self.interface else "",
            db_secret_arn=(
                self.database.secret.secret_arn if self.database and self.database.secret else ""
            ),
            db_pool_size=settings.db_pool_size,
        )
        self.launch_template = self._launch_template(ec2.UserData.custom(script))
        group_subnets = subnets if settings.is_ha else subnets[:1]
        self.auto_scaling_group = autoscaling.AutoScalingGroup(
            self,
            "Servers",
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnets=group_subnets),
            launch_template=self.launch_template,
            min_capacity=settings.server_count,
            max_capacity=settings.server_count,
            group_metrics=[autoscaling.GroupMetrics.all()],
        )
        acknowledge(
            self.auto_scaling_group,
            "AS3",
            "A fixed-size server group: the CloudWatch alarm on its health is the notification "
            "that matters; per-event scaling notifications would only repeat it.",
        )
        if settings.is_ha or settings.public:
            self._load_balancer()
        else:
            self.server_security_group.add_ingress_rule(
                self.client_security_group,
                ec2.Port.tcp(settings.api_port),
                "the optfleet API from the fleet client group",
            )
            self.client_security_group.add_egress_rule(
                self.server_security_group,
                ec2.Port.tcp(settings.api_port),
                "the optfleet API on the control-plane server",
            )
        self.api_url = self._api_url()
        self.alarms = self._alarms()

    def _token_secret(self) -> secretsmanager.ISecret:
        """A generated API token, or the existing secret named by ``token_secret``."""
        if self.settings.token_secret is not None:
            return secretsmanager.Secret.from_secret_complete_arn(
                self, "ApiToken", self.settings.token_secret
            )
        secret = secretsmanager.Secret(
            self,
            "ApiToken",
            description="optfleet API token: the control-plane server registers it at boot",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=48, exclude_punctuation=True
            ),
        )
        acknowledge(
            secret,
            "SMG4",
            "The server registers the token at boot; rotating it needs every running agent to "
            "re-read it, so rotation is a manual, documented step (docs/infra.md).",
        )
        return secret

    # --- identity -------------------------------------------------------------------------
    def _role(self) -> iam.Role:
        role = iam.Role(
            self,
            "InstanceRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="optfleet control-plane server instances",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore")
            ],
        )
        stack = Stack.of(self)
        stream_arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"{LOG_GROUP_NAME}:log-stream:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn, stream_arn],
            )
        )
        acknowledge(
            role,
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]",
            "AWS's own minimal policy for Session Manager: operators reach the API by SSM port "
            "forwarding instead of SSH or any open port.",
        )
        acknowledge(
            role,
            f"IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:"
            f"{LOG_GROUP_NAME}:log-stream:*]",
            "Log streams are named after instances that do not exist yet; the wildcard stays "
            "inside the server's one log group.",
        )
        return role

    # --- small: data volume + fixed address -----------------------------------------------
    def _data_volume_and_interface(self) -> None:
        settings = self.settings
        subnet = self.subnets[0]
        zone = settings.availability_zone or subnet.availability_zone
        if settings.data_volume_id is not None:
            # A volume kept by an earlier `cdk destroy`: adopt it, data and backup tag included.
            self.data_volume = ec2.Volume.from_volume_attributes(
                self,
                "DataVolume",
                volume_id=settings.data_volume_id,
                availability_zone=zone,
            )
        else:
            volume = ec2.Volume(
                self,
                "DataVolume",
                availability_zone=zone,
                size=None if settings.data_snapshot_id else Size.gibibytes(settings.data_volume_gb),
                snapshot_id=settings.data_snapshot_id,
                volume_type=ec2.EbsDeviceVolumeType.GP3,
                encrypted=True,
                # RETAIN, not SNAPSHOT: the volume itself outlives the stack and the next deploy
                # adopts it with `-c data_volume_id=...`, no restore step needed.
                removal_policy=self.data_removal,
            )
            # Only the data volume carries the tag Data Lifecycle Manager snapshots by.
            Tags.of(volume).add(BACKUP_TAG, Stack.of(self).stack_name)
            self.data_volume = volume
        self.interface = ec2.CfnNetworkInterface(
            self,
            "ApiInterface",
            subnet_id=subnet.subnet_id,
            group_set=[self.server_security_group.security_group_id],
            description="optfleet control-plane API: a private IP that survives the instance",
        )
        stack = Stack.of(self)
        instance_arn = stack.format_arn(service="ec2", resource="instance", resource_name="*")
        volume_arn = stack.format_arn(
            service="ec2", resource="volume", resource_name=self.data_volume.volume_id
        )
        interface_arn = stack.format_arn(
            service="ec2", resource="network-interface", resource_name=self.interface.ref
        )
        on_own_instances = {"StringEquals": {"aws:ResourceTag/Stack": stack.stack_name}}
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["ec2:AttachVolume"], resources=[volume_arn])
        )
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["ec2:AttachNetworkInterface"], resources=[interface_arn])
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["ec2:AttachVolume", "ec2:AttachNetworkInterface"],
                resources=[instance_arn],
                conditions=on_own_instances,
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["ec2:DescribeVolumes", "ec2:DescribeNetworkInterfaces"], resources=["*"]
            )
        )
        acknowledge(
            self.role,
            "IAM5[Resource::*]",
            "ec2:DescribeVolumes and ec2:DescribeNetworkInterfaces support no resource-level "
            "permissions; AWS accepts only '*' for them.",
        )
        acknowledge(
            self.role,
            "IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*]",
            "The server instance's id is unknown until the group launches it; a condition limits "
            "the attach calls to instances tagged with this stack.",
        )
        self._snapshot_policy()

    def _snapshot_policy(self) -> None:
        """Daily EBS snapshots of the data volume (Data Lifecycle Manager, by tag)."""
        stack = Stack.of(self)
        role = iam.Role(
            self,
            "SnapshotRole",
            assumed_by=iam.ServicePrincipal("dlm.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "service-role/AWSDataLifecycleManagerServiceRole"
                )
            ],
        )
        acknowledge(
            role,
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSDataLifecycleManagerServiceRole]",
            "AWS's managed role for Data Lifecycle Manager, kept current by AWS; DLM acts only on "
            "volumes carrying the policy's target tag.",
        )
        self.snapshot_policy = dlm.CfnLifecyclePolicy(
            self,
            "SnapshotPolicy",
            description="optfleet control plane data volume daily snapshots",
            state="ENABLED",
            execution_role_arn=role.role_arn,
            policy_details=dlm.CfnLifecyclePolicy.PolicyDetailsProperty(
                policy_type="EBS_SNAPSHOT_MANAGEMENT",
                resource_types=["VOLUME"],
                target_tags=[CfnTag(key=BACKUP_TAG, value=stack.stack_name)],
                schedules=[
                    dlm.CfnLifecyclePolicy.ScheduleProperty(
                        name="daily",
                        copy_tags=True,
                        create_rule=dlm.CfnLifecyclePolicy.CreateRuleProperty(
                            interval=24, interval_unit="HOURS", times=["03:00"]
                        ),
                        retain_rule=dlm.CfnLifecyclePolicy.RetainRuleProperty(
                            count=self.settings.snapshot_retain_count
                        ),
                    )
                ],
            ),
        )

    # --- ha: PostgreSQL on RDS ------------------------------------------------------------
    def _database(self) -> None:
        settings = self.settings
        db_group = ec2.SecurityGroup(
            self,
            "DatabaseSecurityGroup",
            vpc=self.vpc,
            description="optfleet control-plane database: PostgreSQL from the servers only",
            allow_all_outbound=False,
        )
        db_group.add_ingress_rule(
            self.server_security_group, ec2.Port.tcp(POSTGRES), "PostgreSQL from the servers"
        )
        self.server_security_group.add_egress_rule(
            db_group, ec2.Port.tcp(POSTGRES), "PostgreSQL on RDS"
        )
        self.database = rds.DatabaseInstance(
            self,
            "Database",
            engine=rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_17_6),
            instance_type=ec2.InstanceType(settings.db_instance_class.removeprefix("db.")),
            vpc=self.vpc,
            vpc_subnets=ec2.SubnetSelection(subnets=self.subnets),
            security_groups=[db_group],
            credentials=rds.Credentials.from_generated_secret("optfleet"),
            database_name="optfleet",
            allocated_storage=settings.db_storage_gb,
            storage_type=rds.StorageType.GP3,
            storage_encrypted=True,
            multi_az=settings.db_multi_az,
            publicly_accessible=False,
            backup_retention=Duration.days(7),
            deletion_protection=not settings.delete_data,
            removal_policy=self.database_removal,
            auto_minor_version_upgrade=True,
            instance_identifier=DB_INSTANCE_ID,
            cloudwatch_logs_exports=["postgresql"],
        )
        # The log group RDS writes to, made here with retention: `cloudwatch_logs_retention`
        # would add a Lambda-backed custom resource.
        db_logs = logs.LogGroup(
            self,
            "DatabaseLogs",
            log_group_name=f"/aws/rds/instance/{DB_INSTANCE_ID}/postgresql",
            removal_policy=RemovalPolicy.DESTROY,
        )
        cast(
            logs.CfnLogGroup, db_logs.node.default_child
        ).retention_in_days = settings.log_retention_days
        self.database.node.add_dependency(db_logs)
        if self.database.secret is not None:  # always: credentials are generated above
            self.database.secret.grant_read(self.role)
        acknowledge(
            self.database,
            "RDS11",
            "The database admits only the servers' security group; a non-default port adds "
            "nothing to that.",
        )
        acknowledge(
            self.database,
            "SMG4",
            "The server reads the database password at boot; rotation would need a Lambda "
            "(not deployable here) and a server restart: a documented manual step.",
        )
        acknowledge(
            self.database,
            "RDS6",
            "The server connects with the generated password from Secrets Manager; IAM database "
            "authentication tokens expire every 15 minutes and the server has no refresher.",
        )
        if settings.delete_data:
            acknowledge(
                self.database,
                "RDS10",
                "delete_data=true asks for a database that `cdk destroy` removes with its data.",
            )
        if not settings.db_multi_az:
            acknowledge(self.database, "RDS3", "db_multi_az=false was asked for explicitly.")

    # --- load balancer (ha, or a public domain) -------------------------------------------
    def _load_balancer(self) -> None:
        settings = self.settings
        alb_group = ec2.SecurityGroup(
            self,
            "LoadBalancerSecurityGroup",
            vpc=self.vpc,
            description="optfleet control-plane load balancer",
            allow_all_outbound=False,
        )
        alb = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=self.vpc,
            vpc_subnets=ec2.SubnetSelection(subnets=self.subnets),
            internet_facing=settings.public,
            security_group=alb_group,
            drop_invalid_header_fields=True,
        )
        acknowledge(
            alb,
            "ELB2",
            "Access logs need an S3 bucket with a bucket policy for the ELB account; the "
            "server's own logs in CloudWatch record every API call that matters.",
        )
        target_group = elbv2.ApplicationTargetGroup(
            self,
            "Targets",
            vpc=self.vpc,
            port=settings.api_port,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[self.auto_scaling_group],
            health_check=elbv2.HealthCheck(path="/health", healthy_http_codes="200"),
            deregistration_delay=Duration.seconds(30),
        )
        if settings.public and settings.certificate_arn is not None:
            alb.add_listener(
                "Https",
                port=HTTPS,
                protocol=elbv2.ApplicationProtocol.HTTPS,
                certificates=[elbv2.ListenerCertificate.from_arn(settings.certificate_arn)],
                ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
                default_target_groups=[target_group],
                open=False,
            )
            alb_group.add_ingress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS), "public HTTPS")
            acknowledge(
                alb_group,
                "EC23",
                "domain + certificate_arn ask for a public HTTPS endpoint: port 443 only, TLS "
                "with ACM's certificate, every API call authenticated by token.",
            )
            self.client_security_group.add_egress_rule(
                ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS), "the public optfleet API"
            )
        else:
            alb.add_listener(
                "Http",
                port=settings.api_port,
                protocol=elbv2.ApplicationProtocol.HTTP,
                default_target_groups=[target_group],
                open=False,
            )
            alb_group.add_ingress_rule(
                self.client_security_group,
                ec2.Port.tcp(settings.api_port),
                "the optfleet API from the fleet client group",
            )
            self.client_security_group.add_egress_rule(
                alb_group, ec2.Port.tcp(settings.api_port), "the optfleet API load balancer"
            )
            # Operators' SSM port forwarding runs on a server instance and reaches the ALB.
            alb_group.add_ingress_rule(
                self.server_security_group,
                ec2.Port.tcp(settings.api_port),
                "SSM port forwarding through a server instance",
            )
            self.server_security_group.add_egress_rule(
                alb_group, ec2.Port.tcp(settings.api_port), "the API load balancer (operators)"
            )
        alb_group.add_egress_rule(
            self.server_security_group, ec2.Port.tcp(settings.api_port), "the servers"
        )
        self.server_security_group.add_ingress_rule(
            alb_group, ec2.Port.tcp(settings.api_port), "the API from the load balancer"
        )
        self.load_balancer = alb
        self.target_group = target_group

    def _api_url(self) -> str:
        settings = self.settings
        if settings.public:
            return f"https://{settings.domain}"
        if self.load_balancer is not None:
            return f"http://{self.load_balancer.load_balancer_dns_name}:{settings.api_port}"
        if self.interface is None:
            raise ValueError("size=small without its network interface")
        return f"http://{self.interface.attr_primary_private_ip_address}:{settings.api_port}"

    # --- launch template and alarms -------------------------------------------------------
    def _launch_template(self, user_data: ec2.UserData) -> ec2.LaunchTemplate:
        return ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            machine_image=ec2.MachineImage.from_ssm_parameter(
                AL2023_PARAMETER.format(arch="x86_64"), os=ec2.OperatingSystemType.LINUX
            ),
            instance_type=ec2.InstanceType(self.settings.instance_type),
            user_data=user_data,
            role=self.role,
            security_group=self.server_security_group,
            http_endpoint=True,
            http_tokens=ec2.LaunchTemplateHttpTokens.REQUIRED,
            http_put_response_hop_limit=1,
            instance_metadata_tags=True,
            detailed_monitoring=True,
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    volume=ec2.BlockDeviceVolume.ebs(
                        20,
                        encrypted=True,
                        volume_type=ec2.EbsDeviceVolumeType.GP3,
                        delete_on_termination=True,
                    ),
                )
            ],
        )

    def _alarms(self) -> list[cloudwatch.Alarm]:
        group_name = self.auto_scaling_group.auto_scaling_group_name
        in_service = cloudwatch.Metric(
            namespace="AWS/AutoScaling",
            metric_name="GroupInServiceInstances",
            dimensions_map={"AutoScalingGroupName": group_name},
            statistic="Minimum",
            period=Duration.minutes(1),
        )
        alarms = [
            in_service.create_alarm(
                self,
                "ServersMissingAlarm",
                alarm_description="optfleet control plane: fewer servers in service than asked",
                threshold=self.settings.server_count,
                comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                evaluation_periods=5,
                treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
            )
        ]
        status = cloudwatch.Metric(
            namespace="AWS/EC2",
            metric_name="StatusCheckFailed",
            dimensions_map={"AutoScalingGroupName": group_name},
            statistic="Maximum",
            period=Duration.minutes(1),
        )
        alarms.append(
            status.create_alarm(
                self,
                "StatusCheckAlarm",
                alarm_description="optfleet control plane: a server fails its EC2 status checks",
                threshold=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                evaluation_periods=3,
            )
        )
        if self.target_group is not None and self.load_balancer is not None:
            alarms.append(
                self.target_group.metrics.unhealthy_host_count(
                    period=Duration.minutes(1), statistic="Maximum"
                ).create_alarm(
                    self,
                    "UnhealthyServersAlarm",
                    alarm_description="optfleet control plane: a server fails /health",
                    threshold=1,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    evaluation_periods=3,
                )
            )
        return alarms
