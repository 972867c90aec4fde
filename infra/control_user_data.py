"""The control-plane server's boot script: a settings header + boot/common.sh + its body.

Values may be CDK tokens (the asset URL, secret ARNs, the volume id); CDK turns the string into
an Fn::Join. The same function renders the deployed script and the one the user-data test runs.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from infra.user_data import AMI_PYTHON, BOOT_DIR, AssetLocation, boot_body

BODY_PATH: Path = BOOT_DIR / "control-user-data.sh"
# AL2023's python3 is 3.9; FastAPI evaluates `X | None` annotations at run time, which 3.9
# cannot, and requirements/server.lock is resolved for 3.11: the workers' python3.11 as well.
SERVER_PYTHON = AMI_PYTHON

HEADER = """#!/bin/bash
# optfleet control-plane user data ({size}). No secret below: the API token and the database
# credentials stay in Secrets Manager; only their ARNs are here.
set -euo pipefail
shopt -s inherit_errexit
OPTFLEET_PYTHON="${{OPTFLEET_PYTHON:-{python}}}"
"""


def render_control_user_data(
    *,
    size: str,
    wheelhouse: AssetLocation,
    region: str,
    log_group_name: str,
    api_port: int,
    token_secret_arn: str,
    data_volume_id: str = "",
    interface_id: str = "",
    db_secret_arn: str = "",
    db_pool_size: int = 32,
) -> str:
    """Return the whole bash boot script of a control-plane server instance."""
    variables = (
        ("CONTROL_SIZE", size),
        ("WHEELHOUSE_URL", wheelhouse.s3_url),
        ("WHEELHOUSE_HASH", wheelhouse.asset_hash),
        ("AWS_REGION_NAME", region),
        ("LOG_GROUP", log_group_name),
        ("API_PORT", str(api_port)),
        ("TOKEN_SECRET_ARN", token_secret_arn),
        ("DATA_VOLUME_ID", data_volume_id),
        ("INTERFACE_ID", interface_id),
        ("DB_SECRET_ARN", db_secret_arn),
        ("DB_POOL_SIZE", str(db_pool_size)),
    )
    lines = [HEADER.format(size=size, python=SERVER_PYTHON)]
    lines += [f"{name}={shlex.quote(value)}" for name, value in variables]
    lines.append("")
    return "\n".join(lines) + "\n" + boot_body(BODY_PATH)
