"""cdk-nag AwsSolutions acknowledgements, placed on the construct that causes each finding.

cdk-nag 3 reports a finding as `AwsSolutions-<RULE>[<detail>]`; the acknowledgement id is that
name prefixed with the pack name. Every acknowledgement carries its reason, and both land in
`cdk.out/validation-report.json`.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Stack, Token, Validations
from constructs import IConstruct

PACK = "AwsSolutions"


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge the AwsSolutions ``finding`` (e.g. ``IAM5[Resource::*]``) under ``scope``.

    Write ARNs in findings with ``<AWS::Region>`` and ``<AWS::AccountId>``: they are replaced by
    the stack's concrete region and account when the environment is pinned (``-c account=…
    -c region=…``), because cdk-nag then reports the ARN with the concrete values.
    """
    finding = concrete_finding(scope, finding)
    Validations.of(scope).acknowledge(Acknowledgment(id=f"{PACK}::{PACK}-{finding}", reason=reason))


def concrete_finding(scope: IConstruct, finding: str) -> str:
    """``finding`` with the pseudo parameters the stack knows as literals filled in."""
    stack = Stack.of(scope)
    for placeholder, value in (
        ("<AWS::Region>", stack.region),
        ("<AWS::AccountId>", stack.account),
    ):
        if not Token.is_unresolved(value):
            finding = finding.replace(placeholder, value)
    return finding
