"""cdk-nag AwsSolutions acknowledgements, placed on the construct that causes each finding.

cdk-nag 3 reports a finding as `AwsSolutions-<RULE>[<detail>]`; the acknowledgement id is that
name prefixed with the pack name. Every acknowledgement carries its reason, and both land in
`cdk.out/validation-report.json`.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct

PACK = "AwsSolutions"


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge the AwsSolutions ``finding`` (e.g. ``IAM5[Resource::*]``) under ``scope``."""
    Validations.of(scope).acknowledge(Acknowledgment(id=f"{PACK}::{PACK}-{finding}", reason=reason))
