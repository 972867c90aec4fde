"""The worker's boot script: a rendered settings header plus the static body in boot/.

Values may be CDK tokens (bucket names, the region); CDK turns the string into an Fn::Join, so the
same function renders the deployed script and the one the user-data test runs for real.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from infra.settings import FleetSettings

BOOT_DIR = Path(__file__).parent / "boot"
BODY_PATH = BOOT_DIR / "worker-user-data.sh"
COMMON_PATH = BOOT_DIR / "common.sh"

# The workers' interpreter: AL2023's stock python3 is 3.9, which boto3 stopped supporting after
# 2026-04-29 (no more security fixes); AL2023 packages python3.11 (the control plane's too), and
# the boot script installs it with dnf when the AMI lacks it. docs/agent.md explains the choice.
AMI_PYTHON = "python3.11"

HEADER = """#!/bin/bash
# optfleet worker user data for experiment {experiment_id}. No secret below: the API token is
# read at run time from Secrets Manager by the agent.
set -euo pipefail
shopt -s inherit_errexit
OPTFLEET_PYTHON="${{OPTFLEET_PYTHON:-{python}}}"
"""


@dataclass(frozen=True)
class AssetLocation:
    """Where the boot script fetches one asset archive from and the hash that names it."""

    s3_url: str
    asset_hash: str


def agent_settings(
    settings: FleetSettings, *, region: str, checkpoint_s3: Optional[str] = None
) -> dict[str, str]:
    """Return the KEY=VALUE pairs passed to `worker-bootstrap install --set` (contracts.md);
    ``checkpoint_s3``: the experiment's checkpoint location (``s3://bucket/prefix``)."""
    pairs: dict[str, str] = {
        "OPTFLEET_EXPERIMENT_ID": settings.experiment_id,
        "OPTFLEET_WHEN_DONE": settings.when_done,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }
    if settings.api_url is not None:
        pairs["SIGOPT_API_URL"] = settings.api_url
        if not settings.api_url.startswith("https://"):
            # The control plane serves plain http inside the VPC until the fleet has its CA
            # (issue 24, not built yet); the agent refuses that without this explicit opt-out.
            pairs["OPTFLEET_ALLOW_PLAINTEXT"] = "1"
    if settings.token_secret is not None:
        pairs["OPTFLEET_TOKEN_SECRET"] = settings.token_secret
    if settings.command is not None:
        pairs["OPTFLEET_COMMAND"] = settings.command
    if settings.evaluation_timeout_s is not None:
        pairs["OPTFLEET_TIMEOUT"] = str(settings.evaluation_timeout_s)
    if settings.max_evaluations is not None:
        pairs["OPTFLEET_MAX_EVALUATIONS"] = str(settings.max_evaluations)
    if settings.max_cost_usd is not None:
        pairs["OPTFLEET_MAX_COST_USD"] = f"{settings.max_cost_usd:g}"
    if checkpoint_s3 is not None:
        pairs["OPTFLEET_CHECKPOINT_S3"] = checkpoint_s3
    return pairs


def render_user_data(
    *,
    experiment_id: str,
    agent_pairs: Mapping[str, str],
    wheelhouse: AssetLocation,
    workload: Optional[AssetLocation],
    region: str,
    log_group_name: str,
) -> str:
    """Return the whole bash boot script: settings header followed by the static body."""
    variables: Sequence[tuple[str, str]] = (
        ("OPTFLEET_EXPERIMENT_ID", experiment_id),
        ("WHEELHOUSE_URL", wheelhouse.s3_url),
        ("WHEELHOUSE_HASH", wheelhouse.asset_hash),
        ("WORKLOAD_URL", workload.s3_url if workload else ""),
        ("WORKLOAD_HASH", workload.asset_hash if workload else ""),
        ("AWS_REGION_NAME", region),
        ("LOG_GROUP", log_group_name),
    )
    lines = [HEADER.format(experiment_id=experiment_id, python=AMI_PYTHON)]
    lines += [f"{name}={shlex.quote(value)}" for name, value in variables]
    lines.append("AGENT_SETTINGS=(")
    lines += [f"  {shlex.quote(f'{key}={value}')}" for key, value in agent_pairs.items()]
    lines.append(")")
    lines.append("")
    return "\n".join(lines) + "\n" + boot_body(BODY_PATH)


def boot_body(body_path: Path) -> str:
    """The shared helpers (boot/common.sh) followed by one script's body."""
    return COMMON_PATH.read_text(encoding="utf-8") + "\n" + body_path.read_text(encoding="utf-8")
