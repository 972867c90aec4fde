"""Names of the CloudFormation exports a control plane publishes and fleets import.

A fleet stack given `-c control=optfleet-control` reads them with Fn::ImportValue, which needs no
credentials at synth; CloudFormation then refuses to delete the control plane while a fleet still
imports from it.
"""

from __future__ import annotations

from aws_cdk import Fn

API_URL = "ApiUrl"
TOKEN_SECRET_ARN = "TokenSecretArn"  # noqa: S105 - an export key, not a secret
VPC_ID = "VpcId"
SUBNET_IDS = "SubnetIds"  # comma-separated
CLIENT_SECURITY_GROUP_ID = "ClientSecurityGroupId"
EXPORTS = (API_URL, TOKEN_SECRET_ARN, VPC_ID, SUBNET_IDS, CLIENT_SECURITY_GROUP_ID)


def export_name(control_stack: str, key: str) -> str:
    """The export's name: ``<control stack>:<key>``, e.g. ``optfleet-control:ApiUrl``."""
    return f"{control_stack}:{key}"


def import_value(control_stack: str, key: str) -> str:
    """A token for the value the control plane exports under ``key``."""
    return Fn.import_value(export_name(control_stack, key))
