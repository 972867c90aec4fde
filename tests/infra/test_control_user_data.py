"""The control plane's boot script, for real: shellcheck, then run twice against a throwaway root
with the real server wheelhouse and CPython 3.11 (AL2023's python3.11), reading the token secret
from moto's Secrets Manager with the same boto3 code the instance runs; the units pass
`systemd-analyze verify`; and the installed server really starts from the env file it wrote.

Only the S3 download and the volume/interface attachment are skipped (OPTFLEET_ROOT mode).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.control_user_data import render_control_user_data
from infra.runtime.control_boot import db_url_from_rds_secret
from infra.user_data import AssetLocation
from infra.wheelhouse import build_wheelhouse
from tests.infra.conftest import MotoServer
from tests.infra.test_user_data import _mirror_ami_for_verify, _zip_folder
from tests.support.ports import free_port, wait_until

REGION = "us-east-1"
WHEELHOUSE_HASH = "c" * 64
TOKEN = "control-test-token-0123456789abcdef"
VOLUME_ID = "vol-0123456789abcdef0"


def _python311() -> str:
    for candidate in (
        shutil.which("python3.11"),
        str(Path.home() / ".pyenv/versions/3.11.7/bin/python3.11"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    pytest.fail("no CPython 3.11 here: the control plane's server needs it")


def _aws(moto_server: MotoServer) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": moto_server.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }


@pytest.fixture(scope="module")
def secrets(moto_server: MotoServer) -> dict[str, str]:
    client = boto3.client("secretsmanager", region_name=REGION, **_lower(_aws(moto_server)))
    token_arn = client.create_secret(Name="optfleet/control-token", SecretString=TOKEN)["ARN"]
    db = {
        "username": "optfleet",
        "password": "p@ss:w/rd?#%",
        "host": "db.internal",
        "port": 5432,
        "dbname": "optfleet",
    }
    db_arn = client.create_secret(Name="optfleet/db", SecretString=json.dumps(db))["ARN"]
    return {"token": token_arn, "db": db_arn}


def _lower(env: dict[str, str]) -> dict[str, str]:
    return {
        "endpoint_url": env["AWS_ENDPOINT_URL"],
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
    }


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory, secrets: dict[str, str]) -> Path:
    text = render_control_user_data(
        size="small",
        wheelhouse=AssetLocation(
            s3_url=f"s3://cdk-assets-bucket/{WHEELHOUSE_HASH}.zip", asset_hash=WHEELHOUSE_HASH
        ),
        region=REGION,
        log_group_name="/optfleet/control/server",
        api_port=8080,
        token_secret_arn=secrets["token"],
        data_volume_id=VOLUME_ID,
        interface_id="eni-0123456789abcdef0",
    )
    path = tmp_path_factory.mktemp("control-userdata") / "user-data.sh"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def installed(
    script: Path, moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    assets = tmp_path_factory.mktemp("control-assets")
    _zip_folder(build_wheelhouse(include_server=True), assets / "wheelhouse.zip")
    root = tmp_path_factory.mktemp("control-root")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(root),
        "OPTFLEET_ROOT": str(root),
        "OPTFLEET_LOCAL_ASSETS": str(assets),
        "OPTFLEET_PYTHON": _python311(),
        "PIP_NO_INDEX": "1",
        **_aws(moto_server),
    }
    runs = [
        subprocess.run(
            ["bash", str(script)], env=env, capture_output=True, text=True, timeout=900, check=False
        )
        for _ in range(2)
    ]
    return {"root": root, "runs": runs}


def test_shellcheck_is_clean(script: Path) -> None:
    result = subprocess.run(
        ["shellcheck", "-s", "bash", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_script_holds_only_the_secret_arn(script: Path, secrets: dict[str, str]) -> None:
    text = script.read_text()
    assert TOKEN not in text
    assert f"TOKEN_SECRET_ARN={secrets['token']}" in text
    assert 'OPTFLEET_PYTHON="${OPTFLEET_PYTHON:-python3.11}"' in text


def test_install_succeeds_twice(installed: dict[str, Any]) -> None:
    first, second = installed["runs"]
    assert first.returncode == 0, first.stderr[-4000:]
    assert second.returncode == 0, second.stderr[-4000:]
    assert "opt/optfleet/server-venv is up to date" in second.stderr
    assert f"test root: not attaching {VOLUME_ID}" in first.stderr


def test_env_file_is_0600_and_holds_the_token_from_secrets_manager(
    installed: dict[str, Any],
) -> None:
    env_file: Path = installed["root"] / "etc/optfleet/server.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    text = env_file.read_text()
    assert f'OPTFLEET_BOOTSTRAP_TOKEN="{TOKEN}"' in text
    assert 'OPTFLEET_DB_URL="sqlite:////var/lib/optfleet-server/optfleet.db"' in text
    data_dir = installed["root"] / "var/lib/optfleet-server"
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700


def test_server_unit(installed: dict[str, Any]) -> None:
    unit = (installed["root"] / "etc/systemd/system/optfleet-server.service").read_text()
    assert "EnvironmentFile=/etc/optfleet/server.env" in unit
    assert (
        "ExecStart=/opt/optfleet/server-venv/bin/python -m infra.runtime.control_server "
        "--host 0.0.0.0 --port 8080 --db-pool-size 32" in unit
    )
    assert "RequiresMountsFor=/var/lib/optfleet-server" in unit
    assert "User=optfleet-server" in unit
    assert TOKEN not in unit


def test_units_pass_systemd_analyze_verify(installed: dict[str, Any]) -> None:
    root: Path = installed["root"]
    _mirror_ami_for_verify(root, venv="opt/optfleet/server-venv")
    units = [
        str(root / "etc/systemd/system" / name)
        for name in ("optfleet-server.service", "optfleet-server-logs.service")
    ]
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", *units],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line for line in result.stderr.splitlines() if "optfleet" in line] == []


def test_installed_server_starts_from_the_env_file_and_accepts_the_token(
    installed: dict[str, Any], tmp_path: Path
) -> None:
    """What the unit would run: the venv's server, env from the file (the DB moved to tmp)."""
    root: Path = installed["root"]
    pairs = {}
    for line in (root / "etc/optfleet/server.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key] = value.strip('"')
    pairs["OPTFLEET_DB_URL"] = f"sqlite:///{tmp_path / 'optfleet.db'}"
    port = free_port()
    process = subprocess.Popen(
        [
            str(root / "opt/optfleet/server-venv/bin/python"),
            "-m",
            "infra.runtime.control_server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), **pairs},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):  # noqa: S310 - loopback http URL we built
                    return True
            except OSError:
                assert process.poll() is None, process.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
                return False

        wait_until(healthy, timeout_s=90, what="control-plane server /health")
        request = urllib.request.Request(  # noqa: S310 - loopback http URL we built
            f"{base}/v1/experiments", headers={"Authorization": f"Basic {_basic(TOKEN)}"}
        )
        with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 - loopback http URL we built
            assert reply.status == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr:
            process.stderr.close()


def _basic(token: str) -> str:
    import base64

    return base64.b64encode(f"{token}:".encode()).decode()


def test_write_env_for_ha_builds_the_database_url_from_the_rds_secret(
    moto_server: MotoServer, secrets: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "server.env"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.runtime.control_boot",
            "--region",
            REGION,
            "write-env",
            "--out",
            str(out),
            "--token-secret",
            secrets["token"],
            "--db-secret",
            secrets["db"],
        ],
        env={**os.environ, **_aws(moto_server)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    text = out.read_text()
    url = "postgresql+psycopg://optfleet:p%40ss%3Aw%2Frd%3F%23%25@db.internal:5432/optfleet"
    assert f'OPTFLEET_DB_URL="{url}"' in text
    assert f'OPTFLEET_BOOTSTRAP_TOKEN="{TOKEN}"' in text


def test_write_env_fails_with_one_line_for_a_missing_secret(
    moto_server: MotoServer, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.runtime.control_boot",
            "--region",
            REGION,
            "write-env",
            "--out",
            str(tmp_path / "x.env"),
            "--token-secret",
            "optfleet/missing",
            "--db-url",
            "sqlite:///x.db",
        ],
        env={**os.environ, **_aws(moto_server)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("control_boot: write-env failed:")
    assert not (tmp_path / "x.env").exists()


def test_database_url_rejects_an_incomplete_secret() -> None:
    with pytest.raises(ValueError, match="password"):
        db_url_from_rds_secret(json.dumps({"username": "u", "host": "h"}))
