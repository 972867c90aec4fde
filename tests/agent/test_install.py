"""`worker-bootstrap install`: unit, env file, state dir; idempotent; systemd-analyze verify."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from worker_bootstrap.config import parse_env_file

WORKER = str(Path(sys.executable).with_name("worker-bootstrap"))


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WORKER, "install", "--root", str(root), *args], capture_output=True, text=True, timeout=60
    )


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    # --root would need the whole OS's target units inside the root; verify the file itself
    # against this machine's units instead (the ExecStart binary exists here).
    env = {**os.environ, "SYSTEMD_LOG_LEVEL": "warning", "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed"
)


def test_install_writes_the_three_parts(tmp_path: Path) -> None:
    done = install(
        tmp_path,
        "--set",
        "OPTFLEET_EXPERIMENT_ID=42",
        "--set",
        "SIGOPT_API_URL=https://api.example.test",
        "--set",
        "OPTFLEET_COMMAND=python3 /opt/train.py --epochs 3",
    )
    assert done.returncode == 0, done.stderr
    unit = tmp_path / "etc/systemd/system/optfleet-agent.service"
    env_file = tmp_path / "etc/optfleet/agent.env"
    state = tmp_path / "var/lib/optfleet"
    text = unit.read_text()
    assert f"ExecStart={WORKER} run --config /etc/optfleet/agent.env" in text
    assert "After=network-online.target" in text and "Wants=network-online.target" in text
    assert "Restart=on-failure" in text and "StartLimitBurst=5" in text
    assert "WantedBy=multi-user.target" in text
    assert "EnvironmentFile" not in text  # the token must not reach the evaluation's env
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert parse_env_file(env_file.read_text()) == {
        "OPTFLEET_EXPERIMENT_ID": "42",
        "SIGOPT_API_URL": "https://api.example.test",
        "OPTFLEET_COMMAND": "python3 /opt/train.py --epochs 3",
    }


def test_install_is_idempotent_and_merges_settings(tmp_path: Path) -> None:
    assert install(tmp_path, "--set", "OPTFLEET_EXPERIMENT_ID=1").returncode == 0
    first = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert install(tmp_path, "--set", "OPTFLEET_EXPERIMENT_ID=1").returncode == 0
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == first
    assert install(tmp_path, "--set", "OPTFLEET_WHEN_DONE=terminate").returncode == 0
    values = parse_env_file((tmp_path / "etc/optfleet/agent.env").read_text())
    assert values == {"OPTFLEET_EXPERIMENT_ID": "1", "OPTFLEET_WHEN_DONE": "terminate"}


def test_install_strips_the_root_from_the_executable(tmp_path: Path) -> None:
    exe = tmp_path / "opt/optfleet/bin/worker-bootstrap"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert install(tmp_path, "--executable", str(exe), "--unit-name", "hpo").returncode == 0
    unit = (tmp_path / "etc/systemd/system/hpo.service").read_text()
    assert "ExecStart=/opt/optfleet/bin/worker-bootstrap run --config" in unit


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("NOPE=1", "unknown key"),
        ("OPTFLEET_EXPERIMENT_ID", "expected KEY=VALUE"),
    ],
)
def test_install_rejects_bad_settings(tmp_path: Path, arg: str, message: str) -> None:
    done = install(tmp_path, "--set", arg)
    assert done.returncode == 2
    assert message in done.stderr


@needs_systemd
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    assert install(tmp_path, "--set", "OPTFLEET_EXPERIMENT_ID=42").returncode == 0
    result = verify(tmp_path / "etc/systemd/system/optfleet-agent.service")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "optfleet-agent.service" not in result.stderr  # no warnings about our unit


@needs_systemd
def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: the same verify rejects a unit whose binary is missing."""
    assert install(tmp_path, "--executable", "/nonexistent/worker-bootstrap").returncode == 0
    result = verify(tmp_path / "etc/systemd/system/optfleet-agent.service")
    assert result.returncode != 0
    assert "not executable" in result.stderr or "No such file" in result.stderr
