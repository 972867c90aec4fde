"""Where fleets run: an existing VPC passed by ids, or a small VPC with public subnets, no NAT.

Shared by the fleet stack and, later, the control-plane stack. No context lookups: an existing
VPC is referenced by its ids, so synth needs no AWS credentials.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from aws_cdk import Fn
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from infra.nag import acknowledge

DEFAULT_CIDR = "10.42.0.0/16"


def deploy_time_azs(count: int = 2) -> list[str]:
    """The region's first ``count`` AZs resolved by CloudFormation (Fn::GetAZs) at deploy time.

    A stack with a pinned account/region would otherwise look its AZs up at synth time, which
    needs AWS credentials; stacks return this from their ``availability_zones``.
    """
    return [Fn.select(index, Fn.get_azs()) for index in range(count)]


class FleetNetwork(Construct):
    """A VPC and the subnets instances launch into.

    Attributes: ``vpc`` (IVpc), ``vpc_subnets`` (SubnetSelection), ``created_vpc`` (bool).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc_id: Optional[str] = None,
        subnet_ids: Sequence[str] = (),
        max_azs: int = 2,
        cidr: str = DEFAULT_CIDR,
    ) -> None:
        super().__init__(scope, construct_id)
        self.created_vpc = vpc_id is None
        if vpc_id is not None:
            # Only the id is used (security group); instances go to the subnets given below.
            self.vpc: ec2.IVpc = ec2.Vpc.from_vpc_attributes(
                self, "Vpc", vpc_id=vpc_id, availability_zones=Fn.get_azs()
            )
            subnets = [
                ec2.Subnet.from_subnet_id(self, f"Subnet{index}", subnet_id)
                for index, subnet_id in enumerate(subnet_ids)
            ]
            self.vpc_subnets = ec2.SubnetSelection(subnets=subnets)
            return
        # Public subnets and no NAT gateway: instances reach AWS APIs and the API through the
        # internet gateway, with public IPs but no inbound rule at all (see WorkerFleet).
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(cidr),
            max_azs=max_azs,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=20
                )
            ],
            # The restricting variant adds a Lambda-backed custom resource; the fleet does not
            # use the default security group, and its own has no ingress.
            restrict_default_security_group=False,
        )
        self.vpc_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC)
        acknowledge(
            self.vpc,
            "VPC7",
            "A per-experiment VPC whose only traffic is the workers' outbound HTTPS; its security "
            "group admits nothing inbound. Flow logs would cost more than the fleet's network "
            "needs; pass vpc_id/subnet_ids to run in a VPC with flow logs.",
        )
